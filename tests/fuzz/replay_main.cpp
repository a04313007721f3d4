// The driver of a fuzz target in the normal (g++) build: runs every seed file, then a fixed number
// of deterministic mutations of them (bit flips, interesting bytes and numbers, truncations,
// insertions, deletions, duplications). Registered with ctest as fuzz_<name>_smoke; libFuzzer
// itself is used by scripts/fuzz.sh.
//
//   fuzz_idx tests/fuzz/corpus/idx [--runs 2000] [--seed 1] [--only K [--save FILE]] [--max-seconds 60]
//            [--once DIR|FILE]...   (run these inputs too, without mutating them)
//
// A finding ends the run with a non-zero exit: a crash or sanitizer report (the signal handler
// names the input), or an exception other than st::UserError escaping the target (LLVMFuzzerTestOneInput
// lets those escape). The failing input is written to ./replay-failure-<target>.bin and named so that
// `--only K` runs it alone.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "src/base/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

constexpr size_t kMaxInput = 1 << 20;

// What runs now, for the signal handler (formatted before each run; the handler only writes it).
char g_current[512] = "";
int g_dump_fd = -1;
const Bytes* g_input = nullptr;
std::string g_dump_path;

pid_t g_main_pid = 0;

void on_fatal(int sig) {
  // A reader may run part of its work in a child process (h5::read_in_child); that child's crash
  // is the reader's to report, the run goes on.
  const char head_child[] = "\nreplay: a child process crashed while running ";
  const char head_main[] = "\nreplay: crash while running ";
  const bool child = ::getpid() != g_main_pid;
  const char* head = child ? head_child : head_main;
  const size_t head_len = child ? sizeof head_child - 1 : sizeof head_main - 1;
  (void)!::write(2, head, head_len);
  (void)!::write(2, g_current, std::strlen(g_current));
  char sigtext[32] = " (signal ";
  size_t k = std::strlen(sigtext);
  if (sig >= 10) sigtext[k++] = static_cast<char>('0' + sig / 10);
  sigtext[k++] = static_cast<char>('0' + sig % 10);
  sigtext[k++] = ')';
  sigtext[k++] = '\n';
  (void)!::write(2, sigtext, k);
  if (!child && g_dump_fd >= 0 && g_input) {
    (void)!::ftruncate(g_dump_fd, 0);
    (void)!::pwrite(g_dump_fd, g_input->data(), g_input->size(), 0);
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n ? static_cast<size_t>(next() % n) : 0; }
};

void mutate_once(Bytes& b, Rng& r) {
  static const uint8_t kBytes[] = {0, 1, 0x7f, 0x80, 0xff, '-', '9', '\n', ',', '"', '[', '=', 0xc3, 0xfe};
  static const char* kNumbers[] = {"0", "-1", "4294967296", "99999999999999999999", "1e308", "nan",
                                   "9223372036854775807", "1000000000000", "-9223372036854775808",
                                   "16777216", "65537", "0.0", "inf", "2147483648"};
  static const uint32_t kU32[] = {0, 0xffffffffu, 0x80000000u, 0x40000000u, 0x01000000u, 0x7fffffffu, 1};
  static const uint64_t kU64[] = {0, ~0ull, 1ull << 30, 1ull << 24, 1ull << 40, 1ull << 62, 0x7fffffffffffffffull};
  const size_t n = b.size();
  // Half of the mutations spare the first line: text formats start with a header whose every
  // mutation is refused at once, and the interesting checks are in the records after it.
  size_t lo = 0;
  if (r.below(2)) {
    const auto nl = std::find(b.begin(), b.end(), uint8_t{'\n'});
    if (nl != b.end() && nl + 1 != b.end()) lo = static_cast<size_t>(nl - b.begin()) + 1;
  }
  auto at_or_after = [&](size_t end) { return lo + r.below(end > lo ? end - lo : 0); };  // in [lo, end)
  switch (r.below(9)) {
    case 0:  // flip a bit
      if (n) b[at_or_after(n)] ^= static_cast<uint8_t>(1u << r.below(8));
      break;
    case 1:  // an interesting byte
      if (n) b[at_or_after(n)] = kBytes[r.below(std::size(kBytes))];
      break;
    case 2:  // truncate
      b.resize(at_or_after(n + 1));
      break;
    case 3: {  // insert random bytes
      Bytes ins;
      for (size_t j = 0, k = 1 + r.below(16); j < k; ++j) ins.push_back(static_cast<uint8_t>(r.next()));
      b.insert(b.begin() + static_cast<std::ptrdiff_t>(at_or_after(n + 1)), ins.begin(), ins.end());
      break;
    }
    case 4: {  // delete a range
      if (!n) break;
      const size_t at = at_or_after(n), len = 1 + r.below(std::min<size_t>(n - at, 64));
      b.erase(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(at + len));
      break;
    }
    case 5: {  // duplicate a range
      if (!n) break;
      const size_t at = at_or_after(n), len = 1 + r.below(std::min<size_t>(n - at, 256));
      const Bytes copy(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(at + len));
      b.insert(b.begin() + static_cast<std::ptrdiff_t>(r.below(n + 1)), copy.begin(), copy.end());
      break;
    }
    case 6: {  // replace a run of digits with an interesting number
      if (!n) break;
      size_t at = at_or_after(n), tries = 0;
      while (tries++ < n && !(b[at] >= '0' && b[at] <= '9')) at = (at + 1) % n;
      if (!(b[at] >= '0' && b[at] <= '9')) break;
      size_t end = at;
      while (end < n && b[end] >= '0' && b[end] <= '9') ++end;
      const std::string num = kNumbers[r.below(std::size(kNumbers))];
      b.erase(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(end));
      b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), num.begin(), num.end());
      break;
    }
    case 7: {  // a big-endian 32-bit field (IDX dims)
      if (n < 4) break;
      const size_t at = r.below(n - 3);
      const uint32_t v = kU32[r.below(std::size(kU32))];
      for (int i = 0; i < 4; ++i) b[at + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
      break;
    }
    case 8: {  // a little-endian 64-bit field (HDF5 sizes and addresses)
      if (n < 8) break;
      const size_t at = r.below(n - 7);
      const uint64_t v = kU64[r.below(std::size(kU64))];
      for (int i = 0; i < 8; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
      break;
    }
  }
  if (b.size() > kMaxInput) b.resize(kMaxInput);
}

Bytes read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

int main(int argc, char** argv) {
  long runs = 2000, only = -2;
  uint64_t seed = 1;
  double max_seconds = 0;
  std::string save;  // with --only: write that input to this file too
  std::vector<fs::path> files;
  size_t mutable_files = 0;  // files[0, mutable_files) are mutated, the rest (--once) only run
  std::vector<std::string> once;
  auto add = [&](const std::string& a) {
    if (fs::is_directory(a)) {
      std::vector<fs::path> v;
      for (const auto& e : fs::directory_iterator(a))
        if (e.is_regular_file()) v.push_back(e.path());
      std::sort(v.begin(), v.end());
      files.insert(files.end(), v.begin(), v.end());
    } else if (fs::is_regular_file(a)) {
      files.emplace_back(a);
    } else {
      std::fprintf(stderr, "replay: no such corpus file or directory: %s\n", a.c_str());
      std::exit(2);
    }
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "replay: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return std::string(argv[++i]);
    };
    if (a == "--runs") runs = std::stol(value());
    else if (a == "--seed") seed = std::stoull(value());
    else if (a == "--only") only = std::stol(value());
    else if (a == "--max-seconds") max_seconds = std::stod(value());
    else if (a == "--save") save = value();
    else if (a == "--once") once.push_back(value());
    else add(a);
  }
  mutable_files = files.size();
  for (const auto& o : once) add(o);
  if (mutable_files == 0) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR|FILE... [--runs N] [--seed S] [--only K] [--max-seconds T]\n"
                         "  K: -1 - i runs corpus file i alone, K >= 0 runs mutation K alone\n", argv[0]);
    return 2;
  }
  std::vector<Bytes> corpus;
  for (const auto& f : files) corpus.push_back(read_all(f));

  const std::string target = fs::path(argv[0]).filename().string();
  g_dump_path = "replay-failure-" + target + ".bin";
  g_dump_fd = ::open(g_dump_path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  g_main_pid = ::getpid();
  for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL}) ::signal(sig, on_fatal);

  long executed = 0;
  double slowest = 0;
  std::string slowest_what;
  auto run_one = [&](const Bytes& input) {
    g_input = &input;
    if (!save.empty())
      std::ofstream(save, std::ios::binary).write(reinterpret_cast<const char*>(input.data()),
                                                  static_cast<std::streamsize>(input.size()));
    const auto start = std::chrono::steady_clock::now();
    try {
      LLVMFuzzerTestOneInput(input.data(), input.size());
    } catch (const st::UserError&) {
      // Targets catch these themselves; an expected outcome either way.
    } catch (const std::exception& e) {
      std::fprintf(stderr, "replay: %s: exception escaped: %s\n", g_current, e.what());
      std::ofstream(g_dump_path, std::ios::binary).write(reinterpret_cast<const char*>(input.data()),
                                                         static_cast<std::streamsize>(input.size()));
      std::fprintf(stderr, "replay: input written to %s\n", g_dump_path.c_str());
      std::exit(1);
    }
    ++executed;
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (took > slowest) slowest = took, slowest_what = g_current;
  };

  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  for (size_t i = 0; i < corpus.size(); ++i) {
    if (only != -2 && only != -1 - static_cast<long>(i)) continue;
    std::snprintf(g_current, sizeof g_current, "%s corpus file %s (--only %ld)", target.c_str(),
                  files[i].filename().c_str(), -1 - static_cast<long>(i));
    run_one(corpus[i]);
  }
  bool stopped = false;
  for (long k = 0; k < runs; ++k) {
    if (only != -2 && only != k) continue;
    if (max_seconds > 0 && elapsed() > max_seconds) {
      stopped = true;
      break;
    }
    Rng r{seed * 0x100000001b3ull + static_cast<uint64_t>(k)};
    const size_t base = static_cast<size_t>(k) % mutable_files;
    Bytes b = corpus[base];
    const size_t steps = 1 + r.below(4);
    for (size_t s = 0; s < steps; ++s) mutate_once(b, r);
    std::snprintf(g_current, sizeof g_current, "%s mutation %ld of %s (seed %llu, --only %ld)", target.c_str(), k,
                  files[base].filename().c_str(), static_cast<unsigned long long>(seed), k);
    run_one(b);
  }
  ::close(g_dump_fd);
  std::error_code ec;
  fs::remove(g_dump_path, ec);  // nothing failed
  std::printf("%s: %ld inputs (%zu seed files + mutations) in %.1f s, no finding%s; slowest %.3f s: %s\n",
              target.c_str(), executed, corpus.size(), elapsed(), stopped ? " (stopped at --max-seconds)" : "",
              slowest, slowest_what.c_str());
  return 0;
}
