// Crash flush (Client::install_crash_flush): a child process logs records without
// flush() and then dies of a fatal signal; the records it logged are in the journal,
// and the signal's previous action still ran.
//
// The writer of the child is made slow to notice records on its own (a 1-second
// writer_poll_interval, and the records are logged right after it fell asleep), so that
// at the moment of the crash the records are still in memory: the control test shows
// that without the handler they are lost.
//
// The parent is single-threaded and has no journal open when it forks; the child alone
// creates the Client. Under AddressSanitizer, ASan's own SIGSEGV handler runs instead
// of the previous one flightlog saved unless ASAN_OPTIONS has handle_segv=0 (see
// client.hpp); the SIGSEGV cases are skipped when that handler is ASan's. The asan test
// preset sets handle_segv=0, so CI runs them under ASan too.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <thread>

#include "flightlog/flightlog.hpp"
#include "support/journal_read.hpp"
#include "support/temp_dir.hpp"
#include "support/test_options.hpp"

namespace fl = flightlog;
using flightlog::test::TempDir;

namespace {

constexpr std::int64_t kRecords = 3000;           // fits one producer's queue: nothing blocks
constexpr std::chrono::milliseconds kPoll{1000};  // the longest the options allow

// The path the previous handlers write their marker to (set before fork).
char g_marker[512];

void write_marker() {
  const int fd = open(g_marker, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd >= 0) {
    const char text[] = "previous handler ran\n";
    (void)!write(fd, text, sizeof text - 1);
    close(fd);
  }
}

// A plain previous handler: marks, then dies of the signal with the default action.
void previous_plain(int sig) {
  write_marker();
  signal(sig, SIG_DFL);
  raise(sig);
}

// A previous SA_SIGINFO handler (a crash reporter's shape): checks it got the siginfo,
// marks, and exits with 42.
void previous_siginfo(int sig, siginfo_t* info, void*) {
  if (info != nullptr && info->si_signo == sig) write_marker();
  _exit(42);
}

enum class Crash { Segv, Abort, Term, Int };
enum class Previous { Default, Plain, SigInfo };

struct Outcome {
  int status = 0;
  bool marker = false;
  bool fast = false;  // the child logged everything well within the poll interval
  std::set<std::int64_t> found;
};

// The child's body; never returns.
[[noreturn]] void child(const std::filesystem::path& dir, Crash crash, Previous previous,
                        bool install, int ready_fd) {
  const int sig = crash == Crash::Segv    ? SIGSEGV
                  : crash == Crash::Abort ? SIGABRT
                  : crash == Crash::Term  ? SIGTERM
                                          : SIGINT;
  if (previous != Previous::Default) {
    struct sigaction sa {};
    sigemptyset(&sa.sa_mask);
    if (previous == Previous::Plain) {
      sa.sa_handler = previous_plain;
    } else {
      sa.sa_sigaction = previous_siginfo;
      sa.sa_flags = SA_SIGINFO;
    }
    sigaction(sig, &sa, nullptr);
  }
  if (install) fl::Client::install_crash_flush(std::chrono::seconds(20));
  fl::Options o = fl::test::test_options(dir);
  o.durability = crash == Crash::Segv ? fl::Durability::Full : fl::Durability::None;
  o.writer_poll_interval = kPoll;
  static fl::Client* client = new fl::Client(o);  // never destroyed: the child crashes
  // Let the writer make its first pass and fall asleep for the poll interval.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto start = std::chrono::steady_clock::now();
  for (std::int64_t n = 0; n < kRecords; ++n) {
    if (client->log_event("crash_flush", {{"n", n}}) != fl::LogResult::Ok) _exit(3);
  }
  const bool fast = std::chrono::steady_clock::now() - start < kPoll / 4;
  (void)!write(ready_fd, fast ? "F" : "S", 1);
  switch (crash) {
    case Crash::Segv: {
      // A store to a page without access: a real fault, which no sanitizer intercepts
      // first (UBSan would report a store through a null pointer and exit).
      void* page = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (page == MAP_FAILED) _exit(4);
      *static_cast<volatile int*>(page) = 1;
      break;
    }
    case Crash::Abort:
      std::abort();
    case Crash::Term:
    case Crash::Int:
      // The parent sends the signal.
      for (;;) pause();
  }
  _exit(4);
}

Outcome run(Crash crash, Previous previous, bool install) {
  TempDir tmp;
  const auto dir = tmp / "journal";
  const std::string marker = (tmp / "marker").string();
  snprintf(g_marker, sizeof g_marker, "%s", marker.c_str());
  int fds[2];
  if (pipe(fds) != 0) std::abort();
  const pid_t pid = fork();
  if (pid < 0) std::abort();
  if (pid == 0) {
    close(fds[0]);
    try {
      child(dir, crash, previous, install, fds[1]);
    } catch (const std::exception& e) {
      fprintf(stderr, "child: %s\n", e.what());
    }
    _exit(5);
  }
  close(fds[1]);
  Outcome out;
  char c = 0;
  if (read(fds[0], &c, 1) == 1) out.fast = c == 'F';
  close(fds[0]);
  if (crash == Crash::Term) kill(pid, SIGTERM);
  if (crash == Crash::Int) kill(pid, SIGINT);
  while (waitpid(pid, &out.status, 0) < 0) {
    if (errno != EINTR) std::abort();
  }
  out.marker = std::filesystem::exists(marker);
  for (const auto& r : fl::test::read_journal(dir)) {
    EXPECT_TRUE(r.error.empty()) << r.error;
    if (r.name != "crash_flush" || r.inputs.size() != 1) continue;
    EXPECT_TRUE(out.found.insert(r.inputs[0].i).second) << "record " << r.inputs[0].i << " twice";
  }
  return out;
}

void expect_all(const Outcome& o) {
  EXPECT_EQ(o.found.size(), static_cast<std::size_t>(kRecords));
  if (!o.found.empty()) {
    EXPECT_EQ(*o.found.begin(), 0);
    EXPECT_EQ(*o.found.rbegin(), kRecords - 1);
  }
}

// A child slow to log may have left the writer time to commit everything on its own:
// then the records found say nothing of the handler.
constexpr const char* kTooSlow =
    "the child was too slow for the records to show the handler's work";

bool died_of(const Outcome& o, int sig) {
  return WIFSIGNALED(o.status) && WTERMSIG(o.status) == sig;
}

bool asan_handles_segv() {
#if defined(__SANITIZE_ADDRESS__)
  const char* opts = std::getenv("ASAN_OPTIONS");
  return opts == nullptr || std::string(opts).find("handle_segv=0") == std::string::npos;
#else
  return false;
#endif
}

}  // namespace

TEST(CrashFlush, SegfaultWithDefaultActionCommitsAndStillDiesOfIt) {
  if (asan_handles_segv())
    GTEST_SKIP() << "ASan handles SIGSEGV; run with ASAN_OPTIONS=handle_segv=0";
  const Outcome o = run(Crash::Segv, Previous::Default, true);
  EXPECT_TRUE(died_of(o, SIGSEGV)) << "status " << o.status;
  if (!o.fast) GTEST_SKIP() << kTooSlow;
  expect_all(o);
}

TEST(CrashFlush, SegfaultChainsToAPreviousSigInfoHandler) {
  if (asan_handles_segv())
    GTEST_SKIP() << "ASan handles SIGSEGV; run with ASAN_OPTIONS=handle_segv=0";
  const Outcome o = run(Crash::Segv, Previous::SigInfo, true);
  EXPECT_TRUE(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 42) << "status " << o.status;
  EXPECT_TRUE(o.marker);
  if (!o.fast) GTEST_SKIP() << kTooSlow;
  expect_all(o);
}

TEST(CrashFlush, AbortCommitsAndStillDiesOfIt) {
  const Outcome o = run(Crash::Abort, Previous::Default, true);
  EXPECT_TRUE(died_of(o, SIGABRT)) << "status " << o.status;
  if (!o.fast) GTEST_SKIP() << kTooSlow;
  expect_all(o);
}

TEST(CrashFlush, SigtermFromOutsideCommitsAndChainsToThePreviousHandler) {
  const Outcome o = run(Crash::Term, Previous::Plain, true);
  EXPECT_TRUE(died_of(o, SIGTERM)) << "status " << o.status;
  EXPECT_TRUE(o.marker);
  if (!o.fast) GTEST_SKIP() << kTooSlow;
  expect_all(o);
}

TEST(CrashFlush, SigintWithDefaultActionCommitsAndStillDiesOfIt) {
  const Outcome o = run(Crash::Int, Previous::Default, true);
  EXPECT_TRUE(died_of(o, SIGINT)) << "status " << o.status;
  if (!o.fast) GTEST_SKIP() << kTooSlow;
  expect_all(o);
}

// Control: the same crash without the handler loses the records still in memory, so
// the tests above show the handler's work, not the writer's ordinary pace.
TEST(CrashFlush, WithoutTheHandlerTheRecordsInMemoryAreLost) {
  const Outcome o = run(Crash::Abort, Previous::Default, false);
  EXPECT_TRUE(died_of(o, SIGABRT)) << "status " << o.status;
  if (!o.fast) GTEST_SKIP() << "the child was too slow for the control to mean anything";
  EXPECT_LT(o.found.size(), static_cast<std::size_t>(kRecords));
}
