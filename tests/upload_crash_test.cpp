// SIGKILL during uploads: every acknowledged record still reaches the receiver, at least
// once (design brief: a batch delivered but not yet deleted is sent again after restart).
//
// Three kinds of process, so the parent stays single-threaded whenever it forks:
//   receiver  a forked child running the TLS test receiver; before it answers 200 to a
//             request it appends the request's body to received.ndjson, so anything a
//             client treats as delivered is on disk;
//   loggers   forked children, one at a time, on one journal: each logs numbered
//             records with auto-sync on (small batches, a short interval, so uploads
//             run all the time), reports to the parent every n that flush()
//             acknowledged, and is SIGKILLed at a random moment;
//   drainer   a last child that logs nothing and syncs until the journal is empty.
// Then every acknowledged n must appear in received.ndjson.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <simdjson.h>

#include <fcntl.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "flightlog/flightlog.hpp"
#include "support/temp_dir.hpp"
#include "support/test_certs.hpp"
#include "support/tls_receiver.hpp"

namespace fl = flightlog;
namespace ft = flightlog::test;
using namespace std::chrono_literals;

namespace {

void write_all(int fd, const void* data, std::size_t n) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w <= 0) _exit(3);
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

// Receiver child: serves until killed; writes its port to `port_fd` once listening.
[[noreturn]] void run_receiver(const std::filesystem::path& out_file, int port_fd) {
  const int out = ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (out < 0) _exit(2);
  ft::TlsReceiver rx;
  rx.set_responder([out](const ft::ReceivedRequest& q) -> std::optional<ft::Reply> {
    write_all(out, q.body.data(), q.body.size());  // before the 200 goes out
    return std::nullopt;
  });
  const std::uint16_t port = rx.port();
  write_all(port_fd, &port, sizeof port);
  ::close(port_fd);
  for (;;) pause();
}

fl::Options logger_options(const std::filesystem::path& dir, std::uint16_t port,
                           const std::filesystem::path& ca) {
  fl::Options o;
  o.offline_dir = dir;
  o.endpoint = "https://127.0.0.1:" + std::to_string(port) + "/ingest";
  o.api_key = "crash-test-key";
  o.ca_file = ca;
  o.offline_sync_interval = 1s;
  o.upload_batch_max_records = 200;  // uploads start as soon as 200 records wait
  o.backoff_base = 10ms;
  o.backoff_cap = 100ms;
  o.full_policy = {fl::FullPolicy::Block, fl::FullPolicy::Block, fl::FullPolicy::Block,
                   fl::FullPolicy::Block};
  return o;
}

// Logger child: logs numbered records from `first`, reporting acknowledged ranges.
[[noreturn]] void run_logger(const fl::Options& o, std::int64_t first, int ack_fd) {
  fl::Client c(o);
  std::int64_t n = first;
  for (;;) {
    const std::int64_t begin = n;
    for (int i = 0; i < 500; ++i, ++n) {
      const auto p = static_cast<fl::Priority>(n % 4);
      if (c.log_prediction({{"n", n}, {"x", 0.25 * static_cast<double>(n)}}, {{"p", 1.0}}, p) !=
          fl::LogResult::Ok) {
        _exit(4);
      }
    }
    c.flush();
    const std::int64_t range[2] = {begin, n};
    write_all(ack_fd, range, sizeof range);
    std::this_thread::sleep_for(2ms);
  }
}

}  // namespace

TEST(UploadCrash, KillNineDuringUploadsLosesNoAcknowledgedRecord) {
  ft::TempDir tmp;
  const auto ca = tmp / "ca.pem";
  std::ofstream(ca) << ft::test_certs().ca_pem;  // made before any fork, shared by all
  const auto received = tmp / "received.ndjson";

  int port_pipe[2];
  ASSERT_EQ(pipe(port_pipe), 0);
  const pid_t receiver = fork();
  ASSERT_GE(receiver, 0);
  if (receiver == 0) {
    ::close(port_pipe[0]);
    run_receiver(received, port_pipe[1]);
  }
  ::close(port_pipe[1]);
  std::uint16_t port = 0;
  ASSERT_EQ(read(port_pipe[0], &port, sizeof port), static_cast<ssize_t>(sizeof port));
  ::close(port_pipe[0]);

  const auto journal = tmp / "journal";
  const fl::Options o = logger_options(journal, port, ca);
  std::mt19937 rng(std::random_device{}());
  std::set<std::int64_t> acked;
  std::int64_t next_n = 0;
  constexpr int kKills = 12;
  for (int round = 0; round < kKills; ++round) {
    int ack_pipe[2];
    ASSERT_EQ(pipe(ack_pipe), 0);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::close(ack_pipe[0]);
      run_logger(o, next_n, ack_pipe[1]);
    }
    ::close(ack_pipe[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 900));
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "logger exited by itself, status " << status;
    std::int64_t range[2];
    while (read(ack_pipe[0], range, sizeof range) == static_cast<ssize_t>(sizeof range)) {
      for (std::int64_t n = range[0]; n < range[1]; ++n) acked.insert(n);
      next_n = std::max(next_n, range[1]);
    }
    ::close(ack_pipe[0]);
    next_n += 1'000'000;  // records the killed child logged unacknowledged keep their n
  }
  ASSERT_GT(acked.size(), 1000u) << "the loggers acknowledged too little to test anything";

  // The drainer: a clean run that ships whatever the kills left in the journal.
  const pid_t drainer = fork();
  ASSERT_GE(drainer, 0);
  if (drainer == 0) {
    fl::Client c(o);
    for (int i = 0; i < 200 && c.get_offline_status().queue_size > 0; ++i) {
      c.sync_offline_queue();
      std::this_thread::sleep_for(20ms);
    }
    _exit(c.get_offline_status().queue_size == 0 ? 0 : 5);
  }
  int status = 0;
  waitpid(drainer, &status, 0);
  kill(receiver, SIGKILL);
  waitpid(receiver, nullptr, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "drainer status " << status;

  // Every acknowledged record arrived at least once.
  std::ifstream in(received);
  std::string line;
  std::set<std::int64_t> delivered;
  std::size_t lines = 0;
  simdjson::dom::parser parser;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    ++lines;
    simdjson::dom::element doc;
    ASSERT_EQ(parser.parse(line).get(doc), simdjson::SUCCESS) << line;
    std::int64_t n = -1;
    ASSERT_EQ(doc["inputs"]["n"].get(n), simdjson::SUCCESS) << line;
    delivered.insert(n);
  }
  std::size_t missing = 0;
  for (std::int64_t n : acked) {
    if (delivered.count(n) == 0 && ++missing <= 10)
      ADD_FAILURE() << "acknowledged n=" << n << " never delivered";
  }
  EXPECT_EQ(missing, 0u);
  std::printf(
      "[ upload crash ] %d kills, %zu acknowledged, %zu delivered (%zu lines: %zu re-sent)\n",
      kKills, acked.size(), delivered.size(), lines, lines - delivered.size());
}
