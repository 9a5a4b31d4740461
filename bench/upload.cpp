// flightlog-bench-upload: upload throughput, from a journal of W2 records until the
// journal is empty. Method: bench/method.md ("Upload throughput").
//
// 1. A journal of --records W2 records is built once (not timed): a Client without an
//    endpoint logs them in the schema form (4 double features, 1 double prediction;
//    priorities 5% CRITICAL, 15% HIGH, 60% NORMAL, 20% LOW), flushes and closes.
// 2. Each run copies that journal into a fresh directory (fsynced, so the first commit
//    of the run does not pay for writing the copy back), opens it with a Client that has
//    the endpoint and offline_auto_sync off, and calls sync_offline_queue() until the
//    queue is empty. The clock and the CPU counters run from just before the first call
//    until the queue is empty; the Client's construction (journal open, TLS context,
//    threads) is outside, the connection and TLS handshake are inside.
// 3. Targets:
//      receiver        the tests' loopback TLS receiver (tests/support/tls_receiver.hpp),
//                      NDJSON, gzip off
//      receiver-gzip   the same with upload_gzip on
//      clickhouse      a real ClickHouse server (scripts/clickhouse-test-server.sh) over
//                      loopback HTTPS, JSONEachRow into a ReplacingMergeTree; a table of
//                      its own per run, dropped after the run
//      clickhouse-gzip the same with upload_gzip on
//    The receiver runs in a forked child process, so the uploading process's CPU
//    (getrusage RUSAGE_SELF) holds the client's work only, and the receiver's CPU is
//    measured in the child and reported beside it. Both share the machine's cores. The
//    receiver keeps every request in memory (about 330 MB for 1M records; in the child,
//    freed when it exits); its counts (records, bytes before and after gzip, requests,
//    connections) are read after the run and checked against the journal.
//    ClickHouse's CPU is read from /proc/<pid>/stat of the server (all its threads, so
//    background merges that run during the upload are included; later ones are not).
//
// Per run: records/s, request body MB/s before gzip ("body") and on the wire ("wire",
// after gzip; equal without it), CPU seconds per million records of the uploading
// process (getrusage: user+sys, minor faults) and of the receiver or server, and the
// uploading process's CPU split by thread from /proc/self/task/*/schedstat (uploader:
// scan + JSON + gzip; https io: HTTP + TLS + sockets; writer commit: the LMDB deletes).
// schedstat also says how long those threads waited for a CPU that a neighbour held
// (the run-queue wait): on a shared machine that, not the library, often sets the rate,
// so two ceilings computed from the CPU figures are printed beside it (see RunResult).
// Every configuration runs --reps times, repetitions interleaved; the summary holds
// medians (of each column separately).
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "flightlog/flightlog.hpp"
#include "format/json.hpp"
#include "format/record.hpp"
#include "journal/journal.hpp"
#include "support/temp_dir.hpp"
#include "support/test_certs.hpp"
#include "support/tls_receiver.hpp"
#include "uploader/endpoint.hpp"
#include "uploader/https_client.hpp"

namespace fl = flightlog;
namespace fd = flightlog::detail;
namespace ft = flightlog::test;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

// A run that cannot be measured (or checked) ends the program: main() reports it,
// after the temporary directories and clients have been cleaned up by unwinding.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void die(const std::string& what) {
  throw Failure(what);
}

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// ---- CPU accounting ------------------------------------------------------------------

// User and system CPU seconds (and, for a process, its minor page faults).
struct Cpu {
  double user = 0;
  double sys = 0;
  double minor_faults = 0;
  double total() const { return user + sys; }
  Cpu operator-(const Cpu& o) const {
    return {user - o.user, sys - o.sys, minor_faults - o.minor_faults};
  }
};

double to_seconds(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6;
}

// This process, every thread (children not included).
Cpu process_cpu() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return {to_seconds(ru.ru_utime), to_seconds(ru.ru_stime), static_cast<double>(ru.ru_minflt)};
}

// utime and stime of a /proc/.../stat file, in seconds (clock-tick resolution, 10 ms
// here). nullopt if the file is gone (the thread or process exited).
std::optional<Cpu> stat_cpu(const fs::path& stat_file) {
  std::ifstream in(stat_file);
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // The command name (field 2) may hold spaces: the fields after it follow the last ')'.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 2));
  // Fields 3..13, then utime (14) and stime (15).
  std::string skip;
  for (int field = 3; field <= 13; ++field) rest >> skip;
  unsigned long long utime = 0, stime = 0;
  if (!(rest >> utime >> stime)) return std::nullopt;
  const auto hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  return Cpu{static_cast<double>(utime) / hz, static_cast<double>(stime) / hz, 0};
}

// The thread ids of this process, ascending.
std::vector<long> thread_ids() {
  std::vector<long> tids;
  for (const auto& entry : fs::directory_iterator("/proc/self/task")) {
    tids.push_back(std::stol(entry.path().filename().string()));
  }
  std::sort(tids.begin(), tids.end());
  return tids;
}

// What the scheduler says about one thread (/proc/.../schedstat): seconds on a CPU,
// and seconds it was runnable but waiting for a CPU (the neighbours' load).
struct Sched {
  double run = 0;
  double wait = 0;
  Sched operator-(const Sched& o) const { return {run - o.run, wait - o.wait}; }
};

std::optional<Sched> read_sched(const fs::path& schedstat) {
  std::ifstream in(schedstat);
  unsigned long long run_ns = 0, wait_ns = 0;
  if (!(in >> run_ns >> wait_ns)) return std::nullopt;
  return Sched{static_cast<double>(run_ns) * 1e-9, static_cast<double>(wait_ns) * 1e-9};
}

std::map<long, Sched> threads_sched(const std::vector<long>& tids) {
  std::map<long, Sched> out;
  for (long tid : tids) {
    if (auto s = read_sched(fs::path("/proc/self/task") / std::to_string(tid) / "schedstat")) {
      out[tid] = *s;
    }
  }
  return out;
}

// Per thread, what happened between two snapshots (threads present in both).
std::map<long, Sched> sched_delta(const std::map<long, Sched>& before,
                                  const std::map<long, Sched>& after) {
  std::map<long, Sched> out;
  for (const auto& [tid, a] : after) {
    if (auto b = before.find(tid); b != before.end()) out[tid] = a - b->second;
  }
  return out;
}

// ---- The journal ---------------------------------------------------------------------

// Logs `count` W2 records into a fresh journal in `dir` (no endpoint), flushes, closes.
// The values are random doubles (as a model's features and predictions are), so their
// JSON takes the usual 17-19 characters each.
void build_journal(const fs::path& dir, std::size_t count) {
  fl::Options o;
  o.offline_dir = dir;
  o.durability = fl::Durability::None;  // not timed: the device flush is not the point
  o.offline_max_queue_size = 0;         // keep every record, whatever --records says
  o.full_policy = {fl::FullPolicy::Block, fl::FullPolicy::Block, fl::FullPolicy::Block,
                   fl::FullPolicy::Block};
  fl::Client c(o);
  const fl::Schema schema =
      c.schema({"feature1", "feature2", "feature3", "feature4"}, {"prediction"});
  std::mt19937_64 rng(20261127);
  std::uniform_real_distribution<double> value(-1.0, 1.0);
  std::uniform_int_distribution<int> percent(0, 99);
  for (std::size_t i = 0; i < count; ++i) {
    const int p = percent(rng);
    const fl::Priority priority = p < 5    ? fl::Priority::Critical
                                  : p < 20 ? fl::Priority::High
                                  : p < 80 ? fl::Priority::Normal
                                           : fl::Priority::Low;
    const double f1 = value(rng), f2 = value(rng), f3 = value(rng), f4 = value(rng);
    const double prediction = value(rng) * 1e3;
    if (c.log_prediction(schema, {f1, f2, f3, f4}, {prediction}, priority) != fl::LogResult::Ok) {
      die("logging record " + std::to_string(i) + " failed");
    }
  }
  c.flush();
  const fl::OfflineStatus st = c.get_offline_status();
  if (st.queue_size != count) {
    die("the journal holds " + std::to_string(st.queue_size) + " records, not " +
        std::to_string(count));
  }
}

// Bytes of request body (before gzip) that the journal's records take in each format:
// rendered here exactly as the uploader renders them, one line per record. The
// ClickHouse server cannot tell us what it received, so its MB/s comes from this.
struct BodySizes {
  std::uint64_t ndjson = 0;
  std::uint64_t clickhouse = 0;
};

BodySizes body_sizes(const fs::path& dir) {
  BodySizes sizes;
  auto journal = fd::Journal::open_read_only(dir);
  fd::DecodedRecord rec;
  std::string line;
  for (std::size_t s = 0; s < 4; ++s) {
    std::uint64_t from = 0;
    do {
      from = journal->scan(static_cast<fd::RecordSet>(s), from, 10000,
                           [&](std::uint64_t seq, std::span<const std::byte> bytes) {
                             if (!fd::decode_record(bytes, rec).empty()) die("damaged record");
                             line.clear();
                             fd::append_record_json(
                                 line, journal->journal_id(), seq, rec, fd::RecordState::Queued,
                                 fd::JsonRecordOptions{.include_delivery_state = false});
                             sizes.ndjson += line.size() + 1;
                             line.clear();
                             fd::append_clickhouse_row(line, journal->journal_id(), seq, rec);
                             sizes.clickhouse += line.size() + 1;
                           });
    } while (from != 0);
  }
  return sizes;
}

// A private copy of the built journal for one run, flushed to the device so that the
// run's first commit does not also write the copy's dirty pages back.
void copy_journal(const fs::path& from, const fs::path& to) {
  fs::create_directory(to);
  fs::permissions(to, fs::perms::owner_all, fs::perm_options::replace);
  for (const auto& entry : fs::directory_iterator(from)) {
    if (!entry.is_regular_file() || entry.path().filename() == "lock.mdb") continue;
    const fs::path target = to / entry.path().filename();
    fs::copy_file(entry.path(), target);
    const int fd = ::open(target.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::fsync(fd) != 0) die("cannot fsync " + target.string());
    ::close(fd);
  }
}

// ---- The receiver, in a child process ------------------------------------------------

// What the child reports when the run is over.
struct ReceiverTotals {
  std::uint64_t requests = 0;
  std::uint64_t records = 0;     // lines received
  std::uint64_t body_bytes = 0;  // after gunzip
  std::uint64_t wire_bytes = 0;  // as received
  std::uint64_t connections = 0;
  std::uint64_t gunzip_errors = 0;
  double cpu_user = 0;  // the receiver's CPU from its start until the client's last byte
  double cpu_sys = 0;
  double run_queue_wait = 0;  // seconds its threads waited for a CPU meanwhile
};

void write_all(int fd, const void* data, std::size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) die(std::string("pipe write: ") + std::strerror(errno));
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

bool read_all(int fd, void* data, std::size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// The loopback TLS receiver in a forked child. The parent must be single-threaded when
// it is made (fork copies only the calling thread).
class ReceiverProcess {
 public:
  ReceiverProcess() {
    wait_until_single_threaded();
    int to_child[2], to_parent[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(to_parent, O_CLOEXEC) != 0) die("pipe");
    pid_ = ::fork();
    if (pid_ < 0) die("fork");
    if (pid_ == 0) {
      ::close(to_child[1]);
      ::close(to_parent[0]);
      serve(to_child[0], to_parent[1]);  // never returns
    }
    ::close(to_child[0]);
    ::close(to_parent[1]);
    to_child_ = to_child[1];
    from_child_ = to_parent[0];
    if (!read_all(from_child_, &port_, sizeof port_)) die("the receiver did not start");
  }

  ~ReceiverProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (to_child_ >= 0) ::close(to_child_);
    if (from_child_ >= 0) ::close(from_child_);
  }

  ReceiverProcess(const ReceiverProcess&) = delete;
  ReceiverProcess& operator=(const ReceiverProcess&) = delete;

  std::uint16_t port() const { return port_; }

  // Tells the child the run is over; it reports and exits.
  ReceiverTotals finish() {
    const char go = 'x';
    write_all(to_child_, &go, 1);
    ReceiverTotals t;
    if (!read_all(from_child_, &t, sizeof t)) die("the receiver died before reporting");
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return t;
  }

 private:
  // Threads of an earlier run may still be winding down (a detached DNS lookup of the
  // HTTPS client ends on its own shortly after the connection is made).
  static void wait_until_single_threaded() {
    const auto deadline = Clock::now() + 10s;
    while (thread_ids().size() > 1) {
      if (Clock::now() > deadline) die("cannot fork the receiver: this process has threads");
      std::this_thread::sleep_for(10ms);
    }
  }

  // The child's whole life. It never returns into the parent's code: whatever happens,
  // it ends with _exit (a failure shows in the parent as a receiver that died).
  [[noreturn]] static void serve(int from_parent, int to_parent) noexcept {
    try {
      serve_until_done(from_parent, to_parent);
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(0);
  }

  static void serve_until_done(int from_parent, int to_parent) {
    ReceiverTotals t;
    {
      ft::TlsReceiver rx;  // 200 "ok" to every request
      const Cpu start = process_cpu();
      const auto sched0 = threads_sched(thread_ids());
      const std::uint16_t port = rx.port();
      write_all(to_parent, &port, sizeof port);
      char go = 0;
      if (!read_all(from_parent, &go, 1)) ::_exit(2);  // the parent died
      // The parent has closed its client: every request is in. CPU first, then the
      // counting (which walks ~330 MB and is not the receiver's work).
      const Cpu used = process_cpu() - start;
      t.cpu_user = used.user;
      t.cpu_sys = used.sys;
      for (const auto& [tid, d] : sched_delta(sched0, threads_sched(thread_ids()))) {
        t.run_queue_wait += d.wait;
      }
      t.connections = rx.connections();
      for (const ft::ReceivedRequest& r : rx.requests()) {
        ++t.requests;
        t.records += static_cast<std::uint64_t>(std::count(r.body.begin(), r.body.end(), '\n'));
        t.body_bytes += r.body.size();
        t.wire_bytes += r.wire_body_bytes;
        if (!r.gunzip_error.empty()) ++t.gunzip_errors;
      }
    }
    write_all(to_parent, &t, sizeof t);
  }

  pid_t pid_ = -1;
  int to_child_ = -1;
  int from_child_ = -1;
  std::uint16_t port_ = 0;
};

// ---- ClickHouse ----------------------------------------------------------------------

std::string read_trimmed(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// A server started by scripts/clickhouse-test-server.sh, found through its directory.
struct ClickHouseServer {
  fs::path dir;
  unsigned https_port = 0;
  std::string user;
  std::string password;

  static ClickHouseServer load(const fs::path& dir) {
    ClickHouseServer s;
    s.dir = dir;
    std::ifstream env(dir / "ports.env");
    if (!env) die((dir / "ports.env").string() + " is missing");
    std::string line;
    while (std::getline(env, line)) {
      const auto eq = line.find('=');
      if (eq == std::string::npos) continue;
      if (line.substr(0, eq) == "HTTPS_PORT") s.https_port = std::stoul(line.substr(eq + 1));
      if (line.substr(0, eq) == "CLICKHOUSE_USER") s.user = line.substr(eq + 1);
    }
    s.password = read_trimmed(dir / "password");
    if (s.https_port == 0 || s.user.empty() || s.password.empty()) {
      die(dir.string() + ": no HTTPS_PORT, user or password");
    }
    return s;
  }

  std::string endpoint() const { return "https://127.0.0.1:" + std::to_string(https_port) + "/"; }
  fs::path ca_file() const { return dir / "server.crt"; }

  // The server's CPU so far (every thread), from /proc.
  std::optional<Cpu> cpu() const {
    const std::string pid = read_trimmed(dir / "server.pid");
    if (pid.empty()) return std::nullopt;
    return stat_cpu(fs::path("/proc") / pid / "stat");
  }
};

// SQL over the server's HTTPS interface, with the library's own client.
class Sql {
 public:
  explicit Sql(const ClickHouseServer& server) : server_(server), client_(config_for(server)) {}

  std::string run(const std::string& query) {
    fd::HttpRequest req;
    req.target = "/";
    req.content_type = "text/plain; charset=utf-8";
    req.headers = {{"X-ClickHouse-User", server_.user}, {"X-ClickHouse-Key", server_.password}};
    req.body = query;
    const fd::HttpOutcome out = client_.post(std::move(req));
    if (out.result != fd::HttpResult::Response || out.status != 200) {
      die("ClickHouse: " + query + " -> " + std::string(fd::http_result_name(out.result)) + " " +
          std::to_string(out.status) + " " + out.error + " " + out.body.substr(0, 300));
    }
    return out.body;
  }

  void close() { client_.close(); }

 private:
  static fd::HttpClientConfig config_for(const ClickHouseServer& server) {
    fd::HttpClientConfig c;
    c.endpoint = fd::parse_endpoint(server.endpoint(), /*allow_plain_http=*/false);
    c.ca_file = server.ca_file().string();
    c.request_timeout = 120000ms;
    return c;
  }

  const ClickHouseServer& server_;
  fd::HttpsClient client_;
};

// The README's table, as ClickHouse 18.16 takes it.
std::string table_ddl(const std::string& table) {
  return "CREATE TABLE " + table +
         " (id String, seq UInt64, priority String, ts String, ts_ns Int64, type String, "
         "name String, inputs String, output String) ENGINE = ReplacingMergeTree() ORDER BY id";
}

// ---- One run -------------------------------------------------------------------------

enum class Target { Receiver, ClickHouse };

struct Config {
  std::string name;  // "receiver", "receiver-gzip", "clickhouse", "clickhouse-gzip"
  Target target = Target::Receiver;
  bool gzip = false;
  std::size_t batch = 20000;
};

struct RunResult {
  double seconds = 0;
  std::uint64_t records = 0;  // synced, per the client
  std::uint64_t body_bytes = 0;
  std::uint64_t wire_bytes = 0;
  std::uint64_t requests = 0;  // receiver only
  Cpu client;                  // the uploading process
  // The Client's threads: CPU seconds and seconds spent waiting for a CPU.
  Sched uploader_thread;      // reads the journal, renders JSON, gzips
  Sched io_thread;            // HTTP and TLS
  Sched commit_thread;        // the writer's commit thread: LMDB deletes, device flushes
  Sched drain_thread;         // the writer's drain thread: idle polls here
  std::optional<Cpu> server;  // receiver or ClickHouse
  double server_wait = 0;     // the receiver's threads' run-queue wait
  std::string note;

  double per_million(double s) const { return s * 1e6 / static_cast<double>(records); }
  double rate() const { return static_cast<double>(records) / seconds; }
  double mb_s(std::uint64_t bytes) const { return static_cast<double>(bytes) / 1e6 / seconds; }

  // Seconds the threads on the upload's path (uploader, io, commit, and the receiver's)
  // were runnable but waited for a CPU that a neighbour held: how noisy the run was.
  // Receiver only (the ClickHouse server's threads are not watched).
  std::optional<double> run_queue_wait() const {
    if (!server || requests == 0) return std::nullopt;
    return uploader_thread.wait + io_thread.wait + commit_thread.wait + server_wait;
  }

  // Ceilings from the CPU that the records cost, immune to the neighbours' load (a
  // model, not a measurement):
  // - cpu_ceiling: every core of the machine busy with this upload and nothing else,
  //   with perfect overlap of client and server. No design does better at this cost.
  // - serial_ceiling: one stage at a time, as the uploader works now (it renders a
  //   batch, waits for the response, waits for the delete, then renders the next),
  //   on an idle machine. Only TCP streaming overlaps the io thread with the server.
  double cpu_ceiling(unsigned cores) const {
    if (!server) return -1;
    return cores / ((client.total() + server->total()) / static_cast<double>(records));
  }
  double serial_ceiling() const {
    if (!server) return -1;
    const double path = uploader_thread.run + io_thread.run + commit_thread.run + server->total();
    return static_cast<double>(records) / path;
  }
};

struct Settings {
  std::size_t records = 1'000'000;
  fl::Durability durability = fl::Durability::Full;
  fs::path ca_file;  // the test CA, for the receiver
  BodySizes sizes;
  std::optional<ClickHouseServer> clickhouse;
};

RunResult run_once(const Config& cfg, const Settings& set, const fs::path& source,
                   const fs::path& work, int run_number) {
  const fs::path dir = work / ("run" + std::to_string(run_number));
  copy_journal(source, dir);

  RunResult res;
  std::optional<ReceiverProcess> rx;
  std::optional<Sql> sql;
  std::string table;
  fl::Options o;
  o.offline_dir = dir;
  o.durability = set.durability;
  o.offline_max_queue_size = 0;
  o.offline_auto_sync = false;  // sync_offline_queue() only: the clock starts at the call
  o.upload_gzip = cfg.gzip;
  o.upload_batch_max_records = cfg.batch;
  o.request_timeout = 60000ms;
  if (cfg.target == Target::Receiver) {
    rx.emplace();  // forked now, while this process has one thread
    o.endpoint = "https://127.0.0.1:" + std::to_string(rx->port()) + "/ingest";
    o.api_key = "bench-key";
    o.ca_file = set.ca_file;
  } else {
    const ClickHouseServer& ch = *set.clickhouse;
    sql.emplace(ch);
    table = "flightlog_bench_" + std::to_string(::getpid()) + "_" + std::to_string(run_number);
    sql->run("DROP TABLE IF EXISTS " + table);
    sql->run(table_ddl(table));
    o.upload_format = fl::UploadFormat::ClickHouse;
    o.endpoint = ch.endpoint();
    o.ca_file = ch.ca_file();
    o.clickhouse_user = ch.user;
    o.clickhouse_table = table;
    o.api_key = ch.password;
  }

  {
    const std::vector<long> before = thread_ids();
    fl::Client c(o);
    // The Client's threads, in the order Client::Impl starts them (client.cpp): the
    // HTTPS client's io thread (made with the transport), the writer's commit and drain
    // threads, then the uploader's thread.
    std::vector<long> mine;
    for (long tid : thread_ids()) {
      if (!std::binary_search(before.begin(), before.end(), tid)) mine.push_back(tid);
    }
    const std::optional<Cpu> server0 =
        cfg.target == Target::ClickHouse ? set.clickhouse->cpu() : std::nullopt;
    const auto threads0 = threads_sched(mine);
    const Cpu cpu0 = process_cpu();
    const auto t0 = Clock::now();

    int idle_passes = 0;
    for (;;) {
      const fl::SyncResult r = c.sync_offline_queue();
      res.records += r.synced;
      if (r.failed > 0) die(cfg.name + ": " + std::to_string(r.failed) + " records failed");
      const fl::OfflineStatus st = c.get_offline_status();
      if (st.queue_size == 0) break;
      // A pass stops early only on a failure (it backs off); give it a few more tries.
      if (r.synced == 0 && ++idle_passes > 20) die(cfg.name + ": stuck: " + st.last_error);
      if (r.synced == 0) std::this_thread::sleep_for(100ms);
    }

    const auto t1 = Clock::now();
    res.client = process_cpu() - cpu0;
    const auto threads = sched_delta(threads0, threads_sched(mine));
    if (cfg.target == Target::ClickHouse) {
      const std::optional<Cpu> server1 = set.clickhouse->cpu();
      if (server0 && server1) res.server = *server1 - *server0;
    }
    res.seconds = seconds_between(t0, t1);
    auto thread = [&](std::size_t i) {
      const auto it = i < mine.size() ? threads.find(mine[i]) : threads.end();
      return it == threads.end() ? Sched{} : it->second;
    };
    if (mine.size() == 4) {
      res.io_thread = thread(0);
      res.commit_thread = thread(1);
      res.drain_thread = thread(2);
      res.uploader_thread = thread(3);
    } else {
      res.note = "unexpected thread count " + std::to_string(mine.size()) + ": no split";
    }
  }  // the Client closes its connection here

  if (res.records != set.records) {
    die(cfg.name + ": synced " + std::to_string(res.records) + " of " +
        std::to_string(set.records));
  }
  if (rx) {
    const ReceiverTotals t = rx->finish();
    if (t.records != set.records) {
      // Duplicates are possible only after a failure, which this run did not have.
      die(cfg.name + ": the receiver got " + std::to_string(t.records) + " records");
    }
    if (t.gunzip_errors > 0) die(cfg.name + ": bodies that did not gunzip");
    res.body_bytes = t.body_bytes;
    res.wire_bytes = t.wire_bytes;
    res.requests = t.requests;
    res.server = Cpu{t.cpu_user, t.cpu_sys, 0};
    res.server_wait = t.run_queue_wait;
    if (t.body_bytes != set.sizes.ndjson) {
      res.note += "body bytes differ from the rendered size; ";
    }
    if (t.connections != 1) {
      // One kept-alive connection is the norm; more means reconnects were timed too.
      res.note += std::to_string(t.connections) + " connections; ";
    }
  } else {
    const std::string count = sql->run("SELECT count() FROM " + table);
    if (std::stoull(count) != set.records) die(cfg.name + ": the table holds " + count + " rows");
    sql->run("DROP TABLE " + table);
    sql->close();
    res.body_bytes = set.sizes.clickhouse;
    // The server cannot say what came over the wire; gzip's size is not known here.
    res.wire_bytes = cfg.gzip ? 0 : res.body_bytes;
  }
  fs::remove_all(dir);
  return res;
}

// ---- Reporting -----------------------------------------------------------------------

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string fixed(double v, int decimals) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(decimals) << v;
  return out.str();
}

// The columns of both CSV files, in order, with how each is computed from a run.
struct Column {
  const char* name;
  int decimals;
  double (*of)(const RunResult&);
};

const std::vector<Column>& columns() {
  using R = const RunResult&;
  static const std::vector<Column> cols = {
      {"records_per_s", 0, [](R r) { return r.rate(); }},
      {"seconds", 3, [](R r) { return r.seconds; }},
      {"body_mb_per_s", 1, [](R r) { return r.mb_s(r.body_bytes); }},
      {"wire_mb_per_s", 1, [](R r) { return r.mb_s(r.wire_bytes); }},
      {"body_bytes_per_record", 1,
       [](R r) { return static_cast<double>(r.body_bytes) / static_cast<double>(r.records); }},
      {"wire_bytes_per_record", 1,
       [](R r) { return static_cast<double>(r.wire_bytes) / static_cast<double>(r.records); }},
      {"records_per_request", 0,
       [](R r) {
         return r.requests == 0 ? 0.0
                                : static_cast<double>(r.records) / static_cast<double>(r.requests);
       }},
      {"client_cpu_s_per_m", 3, [](R r) { return r.per_million(r.client.total()); }},
      {"client_user_s_per_m", 3, [](R r) { return r.per_million(r.client.user); }},
      {"client_sys_s_per_m", 3, [](R r) { return r.per_million(r.client.sys); }},
      {"client_minor_faults_per_record", 3,
       [](R r) { return r.client.minor_faults / static_cast<double>(r.records); }},
      {"uploader_thread_s_per_m", 3, [](R r) { return r.per_million(r.uploader_thread.run); }},
      {"io_thread_s_per_m", 3, [](R r) { return r.per_million(r.io_thread.run); }},
      {"commit_thread_s_per_m", 3, [](R r) { return r.per_million(r.commit_thread.run); }},
      {"server_cpu_s_per_m", 3,
       [](R r) { return r.server ? r.per_million(r.server->total()) : -1.0; }},
      {"run_queue_wait_s_per_m", 3,
       [](R r) {
         const auto w = r.run_queue_wait();
         return w ? r.per_million(*w) : -1.0;
       }},
      {"cpu_ceiling_records_per_s", 0,
       [](R r) { return r.cpu_ceiling(std::max(1u, std::thread::hardware_concurrency())); }},
      {"serial_ceiling_records_per_s", 0, [](R r) { return r.serial_ceiling(); }},
  };
  return cols;
}

fl::Durability parse_durability(const std::string& s) {
  if (s == "full") return fl::Durability::Full;
  if (s == "nometasync") return fl::Durability::NoMetaSync;
  if (s == "periodic") return fl::Durability::Periodic;
  if (s == "none") return fl::Durability::None;
  die("unknown durability " + s + " (full, nometasync, periodic, none)");
}

}  // namespace

static int run_benchmarks(int argc, char** argv) {
  CLI::App app{
      "Upload throughput: a journal of W2 records to a loopback TLS receiver (gzip "
      "off and on) and to ClickHouse, until the journal is empty."};
  Settings set;
  std::vector<std::size_t> batches{5000, 20000};
  std::vector<std::string> targets{"receiver", "receiver-gzip", "clickhouse"};
  int reps = 3;
  std::string durability = "full";
  std::string clickhouse_dir;
  if (const char* env = std::getenv("FLIGHTLOG_CLICKHOUSE_DIR")) clickhouse_dir = env;
  fs::path out_dir = ".";
  app.add_option("--records", set.records, "Records in the journal");
  app.add_option("--batch", batches, "upload_batch_max_records values")->delimiter(',');
  app.add_option("--targets", targets, "Any of receiver,receiver-gzip,clickhouse,clickhouse-gzip")
      ->delimiter(',');
  app.add_option("--reps", reps, "Runs of each configuration (medians are reported)");
  app.add_option("--durability", durability,
                 "Durability of the uploading Client (its deletes): full, nometasync, periodic, "
                 "none");
  app.add_option("--clickhouse-dir", clickhouse_dir,
                 "Directory of a server made by scripts/clickhouse-test-server.sh (default: "
                 "$FLIGHTLOG_CLICKHOUSE_DIR); without one the clickhouse targets are skipped");
  app.add_option("--out", out_dir, "Directory for upload.csv and upload-runs.csv");
  CLI11_PARSE(app, argc, argv);
  set.durability = parse_durability(durability);
  if (set.records == 0 || reps < 1) die("--records and --reps must be positive");

  // Which configurations run, in order.
  std::vector<Config> configs;
  std::vector<std::string> skipped;
  for (const std::string& t : targets) {
    Config base;
    base.name = t;
    if (t == "receiver" || t == "receiver-gzip") {
      base.target = Target::Receiver;
    } else if (t == "clickhouse" || t == "clickhouse-gzip") {
      base.target = Target::ClickHouse;
      if (clickhouse_dir.empty()) {
        skipped.push_back(t + ": no ClickHouse server (set FLIGHTLOG_CLICKHOUSE_DIR)");
        continue;
      }
    } else {
      die("unknown target " + t);
    }
    base.gzip = t.ends_with("-gzip");
    for (std::size_t b : batches) {
      Config c = base;
      c.batch = b;
      configs.push_back(c);
    }
  }
  if (!clickhouse_dir.empty()) set.clickhouse = ClickHouseServer::load(clickhouse_dir);

  const ft::TempDir work("flightlog-bench-upload");
  // The test CA, made before any fork so the receiver (a child) serves a certificate it
  // signed. The uploading Client trusts it through this file.
  set.ca_file = work / "ca.pem";
  std::ofstream(set.ca_file) << ft::test_certs().ca_pem;

  const fs::path source = work / "source";
  std::cout << "building a journal of " << set.records << " W2 records ..." << std::flush;
  const auto b0 = Clock::now();
  build_journal(source, set.records);
  set.sizes = body_sizes(source);
  std::cout << " " << fixed(seconds_between(b0, Clock::now()), 1) << " s; NDJSON "
            << fixed(static_cast<double>(set.sizes.ndjson) / static_cast<double>(set.records), 1)
            << " B/record, ClickHouse rows "
            << fixed(static_cast<double>(set.sizes.clickhouse) / static_cast<double>(set.records),
                     1)
            << " B/record" << std::endl;
  for (const std::string& s : skipped) std::cout << "skipped " << s << std::endl;

  // Repetitions interleave the configurations (rep 1 of each, then rep 2 ...), so a
  // neighbour's burst of load spreads over all of them instead of hitting one.
  std::vector<std::vector<RunResult>> results(configs.size());
  int run_number = 0;
  for (int rep = 0; rep < reps; ++rep) {
    for (std::size_t i = 0; i < configs.size(); ++i) {
      const Config& cfg = configs[i];
      const RunResult r = run_once(cfg, set, source, work.path(), ++run_number);
      std::cout << std::left << std::setw(16) << cfg.name << " batch " << std::setw(6) << cfg.batch
                << " rep " << rep + 1 << ": " << std::right << std::setw(7) << fixed(r.rate(), 0)
                << " rec/s (ceilings: serial " << fixed(r.serial_ceiling(), 0) << ", cpu "
                << fixed(r.cpu_ceiling(std::max(1u, std::thread::hardware_concurrency())), 0)
                << "; run-queue wait "
                << (r.run_queue_wait() ? fixed(r.per_million(*r.run_queue_wait()), 1) : "n/a")
                << " s/M)  " << fixed(r.mb_s(r.body_bytes), 1) << "/"
                << fixed(r.mb_s(r.wire_bytes), 1) << " MB/s body/wire  CPU s/M: client "
                << fixed(r.per_million(r.client.total()), 2) << " (uploader "
                << fixed(r.per_million(r.uploader_thread.run), 2) << ", io "
                << fixed(r.per_million(r.io_thread.run), 2) << ", commit "
                << fixed(r.per_million(r.commit_thread.run), 2) << ") server "
                << (r.server ? fixed(r.per_million(r.server->total()), 2) : "n/a") << "; "
                << fixed(r.client.minor_faults / static_cast<double>(r.records), 2)
                << " faults/record" << (r.note.empty() ? "" : "  [" + r.note + "]") << std::endl;
      results[i].push_back(r);
    }
  }

  fs::create_directories(out_dir);
  std::ofstream runs(out_dir / "upload-runs.csv");
  std::ofstream summary(out_dir / "upload.csv");
  runs << "target,gzip,batch_max_records,durability,rep";
  summary << "target,gzip,batch_max_records,durability,reps";
  for (const Column& col : columns()) {
    runs << ',' << col.name;
    summary << ',' << col.name;
  }
  runs << '\n';
  summary << '\n';
  for (std::size_t i = 0; i < configs.size(); ++i) {
    const Config& cfg = configs[i];
    const std::string key = cfg.name + ',' + (cfg.gzip ? "on" : "off") + ',' +
                            std::to_string(cfg.batch) + ',' + durability;
    for (std::size_t rep = 0; rep < results[i].size(); ++rep) {
      runs << key << ',' << rep + 1;
      for (const Column& col : columns())
        runs << ',' << fixed(col.of(results[i][rep]), col.decimals);
      runs << '\n';
    }
    summary << key << ',' << results[i].size();
    for (const Column& col : columns()) {
      std::vector<double> values;
      for (const RunResult& r : results[i]) values.push_back(col.of(r));
      summary << ',' << fixed(median(values), col.decimals);
    }
    summary << '\n';
  }
  for (const std::string& s : skipped) summary << "# skipped " << s << '\n';
  std::cout << "wrote " << (out_dir / "upload.csv").string() << " and upload-runs.csv" << std::endl;
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run_benchmarks(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "flightlog-bench-upload: " << e.what() << std::endl;
    return 1;
  }
}
