// The build graph is a DAG of floors (CMakeLists.txt, DESIGN.md): this test reads every
// `#include "..."` of src/, kernels/, datasets/ and models/, builds the folder graph, and fails when
// - a folder has no floor assigned here (a new folder must say where it stands),
// - folders include each other in a cycle (a strongly connected component of more than one folder),
// - a folder includes a folder on a floor above its own (the ground reaching up).
// The checker itself is tested on small graphs, so a pass means something.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

// Floor of each folder: lower numbers are lower floors. Same number: same floor, and then the two
// folders must not include each other at all (the SCC check).
const std::map<std::string, int>& floors() {
  static const std::map<std::string, int> f = {
      {"src/base", 0},     {"src/io", 0},        // base
      {"kernels", 10},                            // kernels
      {"datasets", 20},    {"models", 20},        // datasets, models
      {"src/spec", 30},    {"src/cost", 31},      // core: spec < cost < ops, topology < project
      {"src/ops", 32},     {"src/topology", 32},  //
      {"src/project", 33},  {"src/costref", 32},  // the cost reference: beside ops, see below
      {"src/scaleout", 35},                       // scale-out: collectives, interconnect cost, Chakra
      {"src/train", 40},                          // train (incl. the oneDNN reference network)
      {"src/dse", 50},                            // dse
      {"src/mpi", 55},                            // MPI replicas: linked by the cli alone
      {"src/cli", 60},     {"python", 60},        // cli, the Python module
  };
  return f;
}

struct Edge {
  std::string from, to;  // folders
  std::string where;     // file:line of one include that makes the edge
};

// Tarjan's strongly connected components over the folder graph.
std::vector<std::vector<std::string>> sccs(const std::map<std::string, std::set<std::string>>& g) {
  std::map<std::string, int> index, low;
  std::map<std::string, bool> on_stack;
  std::vector<std::string> stack;
  std::vector<std::vector<std::string>> out;
  int next = 0;
  std::function<void(const std::string&)> visit = [&](const std::string& v) {
    index[v] = low[v] = next++;
    stack.push_back(v);
    on_stack[v] = true;
    auto it = g.find(v);
    if (it != g.end())
      for (const std::string& w : it->second) {
        if (!index.count(w)) {
          visit(w);
          low[v] = std::min(low[v], low[w]);
        } else if (on_stack[w]) {
          low[v] = std::min(low[v], index[w]);
        }
      }
    if (low[v] == index[v]) {
      std::vector<std::string> comp;
      std::string w;
      do {
        w = stack.back();
        stack.pop_back();
        on_stack[w] = false;
        comp.push_back(w);
      } while (w != v);
      std::sort(comp.begin(), comp.end());
      out.push_back(comp);
    }
  };
  std::set<std::string> nodes;
  for (const auto& [v, ws] : g) {
    nodes.insert(v);
    nodes.insert(ws.begin(), ws.end());
  }
  for (const std::string& v : nodes)
    if (!index.count(v)) visit(v);
  return out;
}

// Every problem of an edge list, one line each; empty: the graph is a DAG that respects the floors.
std::vector<std::string> problems(const std::vector<Edge>& edges, const std::map<std::string, int>& floor) {
  std::vector<std::string> p;
  std::map<std::string, std::set<std::string>> g;
  std::set<std::string> unknown;
  for (const Edge& e : edges) {
    if (e.from == e.to) continue;
    g[e.from].insert(e.to);
    for (const std::string& f : {e.from, e.to})
      if (!floor.count(f) && unknown.insert(f).second) p.push_back("folder '" + f + "' has no floor (" + e.where + ")");
  }
  for (const auto& comp : sccs(g)) {
    if (comp.size() < 2) continue;
    std::string s = "cycle between folders:";
    for (const std::string& f : comp) s += " " + f;
    for (const Edge& e : edges)
      if (e.from != e.to && std::count(comp.begin(), comp.end(), e.from) && std::count(comp.begin(), comp.end(), e.to))
        s += "\n    " + e.from + " -> " + e.to + " at " + e.where;
    p.push_back(s);
  }
  for (const Edge& e : edges) {
    if (e.from == e.to || !floor.count(e.from) || !floor.count(e.to)) continue;
    if (floor.at(e.to) > floor.at(e.from))
      p.push_back(e.from + " (floor " + std::to_string(floor.at(e.from)) + ") includes " + e.to + " (floor " +
                  std::to_string(floor.at(e.to)) + ") above it at " + e.where);
  }
  return p;
}

std::string folder_of(const fs::path& rel) {
  // src/<sub>/file -> "src/<sub>"; src/file -> "src"; kernels/file -> "kernels"
  auto it = rel.begin();
  std::string top = it->string();
  if (top != "src") return top;
  ++it;
  fs::path rest;
  for (auto j = it; j != rel.end(); ++j) rest /= *j;
  if (std::distance(rest.begin(), rest.end()) <= 1) return "src";
  return "src/" + it->string();
}

std::vector<Edge> read_edges(const fs::path& root) {
  std::vector<Edge> edges;
  const std::regex inc(R"re(^\s*#\s*include\s*"([^"]+)")re");
  for (const char* top : {"src", "kernels", "datasets", "models"}) {
    for (const auto& e : fs::recursive_directory_iterator(root / top)) {
      const std::string ext = e.path().extension().string();
      if (!e.is_regular_file() || (ext != ".h" && ext != ".cpp")) continue;
      const fs::path rel = fs::relative(e.path(), root);
      std::ifstream in(e.path());
      std::string line;
      int ln = 0;
      while (std::getline(in, line)) {
        ++ln;
        std::smatch m;
        if (!std::regex_search(line, m, inc)) continue;
        const fs::path target = m[1].str();
        // Project includes are spelled from the root ("src/ops/conv.h"); anything else (generated
        // files, same-folder spellings) would hide an edge, so it is an error too.
        if (!fs::exists(root / target)) {
          edges.push_back({folder_of(rel), "<unresolved " + target.string() + ">", rel.string() + ":" + std::to_string(ln)});
          continue;
        }
        edges.push_back({folder_of(rel), folder_of(target), rel.string() + ":" + std::to_string(ln)});
      }
    }
  }
  return edges;
}

TEST(IncludeGraph, CheckerFindsCyclesUpwardIncludesAndUnknownFolders) {
  const std::map<std::string, int> floor = {{"a", 0}, {"b", 1}, {"c", 1}};
  EXPECT_TRUE(problems({{"b", "a", "b.h:1"}, {"c", "a", "c.h:1"}}, floor).empty());
  // b <-> c on the same floor: a cycle, reported with the include that makes each edge.
  auto p = problems({{"b", "c", "b.h:3"}, {"c", "b", "c.h:7"}}, floor);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("cycle between folders: b c"), std::string::npos) << p[0];
  EXPECT_NE(p[0].find("c.h:7"), std::string::npos) << p[0];
  // a -> b: the ground floor reaching up (no cycle needed to fail).
  p = problems({{"a", "b", "a.cpp:2"}}, floor);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("a (floor 0) includes b (floor 1) above it at a.cpp:2"), std::string::npos) << p[0];
  // A three-folder cycle through different floors is one component.
  p = problems({{"a", "b", "x:1"}, {"b", "c", "x:2"}, {"c", "a", "x:3"}}, floor);
  ASSERT_GE(p.size(), 1u);
  EXPECT_NE(p[0].find("cycle between folders: a b c"), std::string::npos) << p[0];
  // A folder without a floor.
  p = problems({{"d", "a", "d.h:1"}}, floor);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("folder 'd' has no floor"), std::string::npos);
}

TEST(IncludeGraph, SourceTreeIsADagOfFloors) {
  const std::vector<Edge> edges = read_edges(SYSTRAIN_SOURCE_DIR);
  ASSERT_GT(edges.size(), 100u) << "too few includes found: wrong source directory?";
  std::set<std::string> folders;
  for (const Edge& e : edges) folders.insert(e.from);
  for (const char* f : {"src/io", "kernels", "datasets", "models", "src/spec", "src/cost", "src/ops", "src/project",
                        "src/scaleout", "src/train", "src/dse", "src/mpi", "src/cli"})
    EXPECT_TRUE(folders.count(f)) << f << " was not read";
  std::string all;
  for (const std::string& p : problems(edges, floors())) all += p + "\n";
  EXPECT_TRUE(all.empty()) << all;
}

// The cost reference must be able to disagree with the fast model (docs/cost-schedule.md): of the
// core floor it may include only the description types, never the fast model or its helpers.
TEST(IncludeGraph, CostReferenceUsesOnlyTheDescriptionTypesOfTheFastModel) {
  const std::regex inc(R"re(^\s*#\s*include\s*"([^"]+)")re");
  const std::set<std::string> allowed = {"src/cost/work.h", "src/spec/spec.h"};
  const fs::path root = SYSTRAIN_SOURCE_DIR;
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(root / "src/costref")) {
    if (!e.is_regular_file()) continue;
    ++files;
    std::ifstream in(e.path());
    std::string line;
    while (std::getline(in, line)) {
      std::smatch m;
      if (!std::regex_search(line, m, inc)) continue;
      const std::string t = m[1].str();
      const bool core = t.rfind("src/", 0) == 0 && t.rfind("src/base/", 0) != 0 && t.rfind("src/io/", 0) != 0 &&
                        t.rfind("src/costref/", 0) != 0;
      EXPECT_TRUE(!core || allowed.count(t)) << e.path() << " includes " << t;
    }
  }
  EXPECT_GE(files, 2);
}

}  // namespace
