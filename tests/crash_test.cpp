// Crash test: SIGKILL at random moments never loses, duplicates or damages an
// acknowledged record, never reuses a sequence, and never leaves a journal that will not
// open (design brief, "Delivery and durability contracts": a record committed, that is
// flush() returned, then kill -9: the record is in the journal exactly once).
//
// How it works
// ------------
// The test (the parent) runs a series of child processes, one at a time, on one journal
// directory. Child g (its "generation", from 1):
//   1. is forked from the parent. The parent is single-threaded and has no journal open
//      when it forks (it reads the journal only between children and closes it before
//      the next fork), so the child inherits no thread, lock, descriptor or mapping of
//      the library. The child alone creates a flightlog::Client, which reopens the
//      journal the previous child was killed in, and reports Ready with the status the
//      reopened journal shows;
//   2. logs bursts of records (one to thousands), each carrying a unique integer
//      n = g * 10^9 + i in its input field "n". Everything else in the record (priority,
//      schema or named form or event, field values, strings of a few hundred bytes that
//      take several queue slots) is a pure function of n, so the parent can check every
//      field that comes back;
//   3. after each flush() returns, sends the parent the n of every record that flush
//      acknowledged (and of any the hot path refused with QueueFull), then goes on.
// The parent SIGKILLs the child at a random moment (2-100 ms after Ready, which lands
// mostly inside heavy bursts; right after the k-th acknowledged flush, or the first one
// past 100 ms; or during start-up, while the Client is still creating its queues and
// opening the journal), reaps it, collects the acknowledgements that reached the pipe
// before the kill, and reads the journal read-only to check the records that child added:
//   - every record decodes (checksum, layout) and holds exactly what its n says, in the
//     record set of its priority, with no upload state and a plausible timestamp;
//   - no n appears twice, and no record the hot path refused appears at all;
//   - no sequence repeats across the five record sets, all are below the journal's
//     next_seq, and every record of child g has a higher sequence than every record of
//     the children before it (a reopen never reuses or goes back);
//   - the journal's entry counts equal the records read (nothing vanished);
//   - every record acknowledged to the parent is present.
// After the last child it checks the whole journal again from scratch. Records that were
// never acknowledged (logged, maybe committed, but killed before the parent heard of it)
// may or may not be present, but never twice.
//
// Both tests run the same scenario: one with the default durability (Full), one with
// Durability::None, since kill -9 (a process crash, not a power loss) must not lose a
// committed record in any mode. FLIGHTLOG_CRASH_SEED=<n> repeats a run's random choices
// (the seed is printed; the kill moments still depend on timing).
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "flightlog/flightlog.hpp"
#include "format/record.hpp"
#include "journal/journal.hpp"
#include "support/temp_dir.hpp"

#if defined(__SANITIZE_THREAD__)
// ThreadSanitizer does not model std::atomic_thread_fence (GCC's -Wtsan says so), and
// moodycamel's queue hands a drained block back to its producer through relaxed loads
// and an acquire fence (Block::is_empty()). Once a producer wraps around its blocks while
// the writer drains, which this test does all the time, TSan reports the producer's write
// into a reused slot (enqueue, enqueue_bulk) as racing with the writer's earlier read of
// it (dequeue_bulk): a false positive (moodycamel's header says TSan "can false report
// races in lock-free code"). The earlier read's stack is often lost, so the suppression
// names both sides. Nothing real is hidden here: each child logs from one thread, so no
// two threads ever share a producer; every other race is still reported. (The tsan test
// preset passes tests/tsan.supp, which covers the whole queue; this keeps the binary
// right when it is run directly.)
extern "C" const char* __tsan_default_suppressions() {
  return "race:ExplicitProducer::enqueue\n"
         "race:ExplicitProducer::dequeue_bulk\n";
}
#endif

namespace fl = flightlog;
namespace detail = flightlog::detail;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

// ---- Scenario parameters ----------------------------------------------------------------

constexpr std::uint64_t kChildren = 28;  // children per test; every 8th is killed in start-up
constexpr int kMinKillsAfterReady = 20;  // the issue asks for at least 20 kills of a live logger
// A child that has not opened the journal by then is a failure (sanitizer builds are slow).
constexpr auto kReadyTimeout = 30s;
// The longest a child lives after Ready, whatever its kill plan (a safety net).
constexpr auto kMaxLife = 10s;
// A kill planned after the k-th flush comes after the first flush past this age instead,
// if that is sooner (flushes of big bursts are slow under sanitizers).
constexpr auto kFlushPlanMaxAge = 100ms;

// ---- The records: everything but n is a function of n -----------------------------------

// n = generation * kPerChild + index: unique across all children, and it says which child
// logged the record.
constexpr std::uint64_t kPerChild = 1'000'000'000;
std::uint64_t generation_of(std::uint64_t n) {
  return n / kPerChild;
}
std::uint64_t index_of(std::uint64_t n) {
  return n % kPerChild;
}

// splitmix64's finaliser: a well-mixed hash, so that neighbouring n differ in every choice.
std::uint64_t mix(std::uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// How a record is logged. The "text" forms carry a string of 150-599 bytes, so the
// record spans 3-10 queue slots (multi-slot records are published and drained whole).
enum class Form : std::uint8_t { SchemaSmall, SchemaText, NamedSmall, NamedText, Event };

Form form_of(std::uint64_t n) {
  const std::uint64_t h = mix(n) % 16;
  if (h < 6) return Form::SchemaSmall;
  if (h < 9) return Form::SchemaText;
  if (h < 12) return Form::NamedSmall;
  if (h < 14) return Form::NamedText;
  return Form::Event;
}

std::string_view form_name(Form f) {
  switch (f) {
    case Form::SchemaSmall:
      return "schema form";
    case Form::SchemaText:
      return "schema form with long text";
    case Form::NamedSmall:
      return "named form";
    case Form::NamedText:
      return "named form with long text";
    case Form::Event:
      return "event";
  }
  return "?";
}

// 10% CRITICAL, 20% HIGH, 50% NORMAL, 20% LOW.
fl::Priority priority_of(std::uint64_t n) {
  const std::uint64_t h = (mix(n) >> 8) % 10;
  if (h < 1) return fl::Priority::Critical;
  if (h < 3) return fl::Priority::High;
  if (h < 8) return fl::Priority::Normal;
  return fl::Priority::Low;
}

constexpr std::size_t kMaxText = 600;
using TextBuffer = std::array<char, kMaxText>;

// A string of 150-599 bytes, different for every n: letters, plus a quote, a backslash,
// a NUL and a byte that is not UTF-8 (the journal stores bytes, not text).
std::string_view text_of(std::uint64_t n, TextBuffer& buf) {
  const std::size_t len = 150 + mix(n ^ 0x7e57) % 450;
  const std::uint64_t h = mix(n);
  for (std::size_t i = 0; i < len; ++i) buf[i] = static_cast<char>('a' + (h + i * 7) % 26);
  buf[len / 4] = '"';
  buf[len / 3] = '\\';
  buf[len / 2] = '\0';
  buf[len - 1] = static_cast<char>(0xff);
  return {buf.data(), len};
}

double x_of(std::uint64_t n) {
  return static_cast<double>(index_of(n)) * 0.25;
}  // exact
double score_of(std::uint64_t n) {
  return static_cast<double>(mix(n) % 1000) / 8.0;
}
bool flag_of(std::uint64_t n) {
  return (mix(n) >> 20) & 1;
}
std::string_view label_of(std::uint64_t n) {
  static constexpr std::string_view kLabels[] = {"cat", "dog", "bird"};
  return kLabels[n % 3];
}
constexpr std::string_view kQuote = "say \"hi\"\n";

// "n=5000001234 (child 5, record #1234, HIGH, named form)"
std::string describe_n(std::uint64_t n) {
  return "n=" + std::to_string(n) + " (child " + std::to_string(generation_of(n)) + ", record #" +
         std::to_string(index_of(n)) + ", " + std::string(fl::to_string(priority_of(n))) + ", " +
         std::string(form_name(form_of(n))) + ")";
}

// What the journal must hold for n. String values refer to `buf` or to constants.
struct ExpectedRecord {
  std::uint8_t kind = detail::kKindPrediction;
  fl::Priority priority = fl::Priority::Normal;
  std::string_view name;
  std::vector<detail::DecodedField> inputs;
  std::vector<detail::DecodedField> outputs;
};

ExpectedRecord expected_record(std::uint64_t n, TextBuffer& buf) {
  const auto i = static_cast<std::int64_t>(n);
  ExpectedRecord e;
  e.priority = priority_of(n);
  switch (form_of(n)) {
    case Form::SchemaSmall:
      e.inputs = {{"n", i}, {"x", x_of(n)}, {"flag", flag_of(n)}};
      e.outputs = {{"score", score_of(n)}};
      break;
    case Form::SchemaText:
      e.inputs = {{"n", i}, {"text", text_of(n, buf)}};
      e.outputs = {{"label", label_of(n)}};
      break;
    case Form::NamedSmall:
      e.inputs = {{"n", i}, {"ratio", x_of(n)}, {"quote", kQuote}};
      e.outputs = {{"ok", flag_of(n)}};
      break;
    case Form::NamedText:
      e.inputs = {{"n", i}, {"blob", text_of(n, buf)}};
      e.outputs = {{"p", score_of(n)}};
      break;
    case Form::Event:
      e.kind = detail::kKindEvent;
      e.name = "tick";
      e.inputs = {{"n", i}, {"tag", label_of(n)}, {"x", x_of(n)}};
      break;
  }
  return e;
}

// The child's side of the same table: logs record n in its form.
struct ChildSchemas {
  fl::Schema small;  // {"n", "x", "flag"} -> {"score"}
  fl::Schema text;   // {"n", "text"} -> {"label"}
};

fl::LogResult log_record(fl::Client& c, const ChildSchemas& s, std::uint64_t n,
                         TextBuffer& buf) noexcept {
  const auto i = static_cast<std::int64_t>(n);
  const fl::Priority p = priority_of(n);
  switch (form_of(n)) {
    case Form::SchemaSmall:
      return c.log_prediction(s.small, {i, x_of(n), flag_of(n)}, {score_of(n)}, p);
    case Form::SchemaText:
      return c.log_prediction(s.text, {i, text_of(n, buf)}, {label_of(n)}, p);
    case Form::NamedSmall:
      return c.log_prediction({{"n", i}, {"ratio", x_of(n)}, {"quote", kQuote}},
                              {{"ok", flag_of(n)}}, p);
    case Form::NamedText:
      return c.log_prediction({{"n", i}, {"blob", text_of(n, buf)}}, {{"p", score_of(n)}}, p);
    case Form::Event:
      return c.log_event("tick", {{"n", i}, {"tag", label_of(n)}, {"x", x_of(n)}}, p);
  }
  return fl::LogResult::Invalid;
}

// ---- Comparing a decoded record with the expected one -----------------------------------

std::string describe_value(const fl::Value& v) {
  switch (v.type()) {
    case fl::Value::Type::Double:
      return "double " + std::to_string(v.as_double());
    case fl::Value::Type::Int:
      return "int " + std::to_string(v.as_int());
    case fl::Value::Type::Bool:
      return v.as_bool() ? "bool true" : "bool false";
    case fl::Value::Type::String:
      return "string of " + std::to_string(v.as_string().size()) + " bytes";
  }
  return "value of unknown type " + std::to_string(static_cast<int>(v.type()));
}

bool same_value(const fl::Value& a, const fl::Value& b) {
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case fl::Value::Type::Double:
      return std::bit_cast<std::uint64_t>(a.as_double()) ==
             std::bit_cast<std::uint64_t>(b.as_double());
    case fl::Value::Type::Int:
      return a.as_int() == b.as_int();
    case fl::Value::Type::Bool:
      return a.as_bool() == b.as_bool();
    case fl::Value::Type::String:
      return a.as_string() == b.as_string();
  }
  return false;
}

std::string compare_fields(std::string_view side, const std::vector<detail::DecodedField>& want,
                           const std::vector<detail::DecodedField>& got) {
  if (want.size() != got.size()) {
    return std::string(side) + ": " + std::to_string(got.size()) + " fields, expected " +
           std::to_string(want.size());
  }
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (want[i].name != got[i].name) {
      return std::string(side) + " field " + std::to_string(i) + " is named '" +
             std::string(got[i].name) + "', expected '" + std::string(want[i].name) + "'";
    }
    if (!same_value(want[i].value, got[i].value)) {
      return std::string(side) + " field '" + std::string(want[i].name) + "' holds " +
             describe_value(got[i].value) + ", expected " + describe_value(want[i].value);
    }
  }
  return {};
}

// The first difference, or "" if the record is exactly what was logged.
std::string compare_record(const ExpectedRecord& want, const detail::DecodedRecord& got) {
  if (got.kind != want.kind) {
    return "kind " + std::to_string(got.kind) + ", expected " + std::to_string(want.kind);
  }
  if (got.priority != want.priority) {
    return "priority " + std::string(fl::to_string(got.priority)) + ", expected " +
           std::string(fl::to_string(want.priority));
  }
  if (got.name != want.name) return "name '" + std::string(got.name) + "'";
  if (auto d = compare_fields("inputs", want.inputs, got.inputs); !d.empty()) return d;
  return compare_fields("outputs", want.outputs, got.outputs);
}

// The record's "n": its first input, an integer.
std::optional<std::uint64_t> n_of(const detail::DecodedRecord& r) {
  if (r.inputs.empty() || r.inputs[0].name != "n" ||
      r.inputs[0].value.type() != fl::Value::Type::Int || r.inputs[0].value.as_int() < 0) {
    return std::nullopt;
  }
  return static_cast<std::uint64_t>(r.inputs[0].value.as_int());
}

std::int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---- The pipe protocol (child -> parent) -------------------------------------------------
//
// A message is a header and a payload: `count` 64-bit words, or for Error `count` bytes
// of text. The child is killed mid-stream, so the parent ignores a trailing message that
// was cut short: its records count as unacknowledged, which the contract allows.

enum class Tag : std::uint32_t {
  Ready = 1,    // {next_seq, queue_size} of the reopened journal
  Acked = 2,    // the n acknowledged by one flush() (one message per flush, maybe empty)
  Refused = 3,  // the n the hot path refused (QueueFull), sent before that flush's Acked
  Error = 4,    // text: the child hit something the test forbids, and exits
};

struct MessageHeader {
  std::uint32_t tag;
  std::uint32_t count;
};

struct Message {
  Tag tag;
  std::vector<std::uint64_t> words;
  std::string text;
};

class Inbox {
 public:
  void append(const char* data, std::size_t size) { buf_.insert(buf_.end(), data, data + size); }

  // The next complete message, if one has arrived.
  std::optional<Message> next() {
    MessageHeader h{};
    if (buf_.size() - pos_ < sizeof h) return std::nullopt;
    std::memcpy(&h, buf_.data() + pos_, sizeof h);
    const bool text = static_cast<Tag>(h.tag) == Tag::Error;
    const std::size_t payload = text ? h.count : std::size_t{h.count} * 8;
    if (buf_.size() - pos_ - sizeof h < payload) return std::nullopt;
    Message m{static_cast<Tag>(h.tag), {}, {}};
    const char* p = buf_.data() + pos_ + sizeof h;
    if (text) {
      m.text.assign(p, payload);
    } else {
      m.words.resize(h.count);
      std::memcpy(m.words.data(), p, payload);
    }
    pos_ += sizeof h + payload;
    if (pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    }
    return m;
  }

  // Bytes of a message not (yet) complete.
  std::size_t pending_bytes() const { return buf_.size() - pos_; }

 private:
  std::vector<char> buf_;
  std::size_t pos_ = 0;
};

// ---- The child ------------------------------------------------------------------------

struct ChildConfig {
  std::filesystem::path dir;
  fl::Durability durability = fl::Durability::Full;
  std::uint64_t generation = 0;
  std::uint64_t seed = 0;
};

constexpr int kChildExitError = 3;  // the child reported an Error and stopped

// Writes everything or ends the child: a broken pipe means the parent is gone.
void write_all(int fd, const char* data, std::size_t size) noexcept {
  while (size > 0) {
    const ssize_t w = ::write(fd, data, size);
    if (w < 0) {
      if (errno == EINTR) continue;
      ::_exit(kChildExitError);
    }
    data += w;
    size -= static_cast<std::size_t>(w);
  }
}

void send(int fd, Tag tag, std::span<const std::uint64_t> words) {
  std::vector<char> buf(sizeof(MessageHeader) + words.size_bytes());
  const MessageHeader h{static_cast<std::uint32_t>(tag), static_cast<std::uint32_t>(words.size())};
  std::memcpy(buf.data(), &h, sizeof h);
  if (!words.empty()) std::memcpy(buf.data() + sizeof h, words.data(), words.size_bytes());
  write_all(fd, buf.data(), buf.size());  // one write: small messages arrive whole
}

[[noreturn]] void fail_child(int fd, const std::string& what) noexcept {
  const MessageHeader h{static_cast<std::uint32_t>(Tag::Error),
                        static_cast<std::uint32_t>(what.size())};
  write_all(fd, reinterpret_cast<const char*>(&h), sizeof h);
  write_all(fd, what.data(), what.size());
  ::_exit(kChildExitError);
}

// Burst sizes: mostly small, often hundreds, sometimes thousands (heavy logging, which
// may fill a queue: NORMAL/HIGH/LOW then refuse with QueueFull, CRITICAL blocks).
std::size_t pick_burst(std::mt19937_64& rng) {
  const std::uint64_t r = rng() % 100;
  if (r < 55) return 1 + rng() % 64;
  if (r < 92) return 100 + rng() % 1400;
  return 2000 + rng() % 4000;
}

// The body of a child process. Never returns: it is SIGKILLed by the parent, or it
// reports an Error and exits. It leaves with _exit, never through the test framework or
// static destructors of the parent's copy.
[[noreturn]] void child_main(const ChildConfig& config, int fd) noexcept {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a parent that died
  try {
    fl::Options o;
    o.offline_dir = config.dir;
    o.durability = config.durability;
    // Eviction would legitimately remove acknowledged records; this test wants none.
    o.offline_max_queue_size = 0;
    fl::Client client(std::move(o));
    const ChildSchemas schemas{client.schema({"n", "x", "flag"}, {"score"}),
                               client.schema({"n", "text"}, {"label"})};
    const fl::OfflineStatus opened = client.get_offline_status();
    const std::uint64_t ready[] = {opened.next_seq, opened.queue_size};
    send(fd, Tag::Ready, ready);

    std::mt19937_64 rng(config.seed);
    TextBuffer buf;
    std::vector<std::uint64_t> acked, refused;
    std::uint64_t next = config.generation * kPerChild;
    for (;;) {
      const std::size_t burst = pick_burst(rng);
      for (std::size_t k = 0; k < burst; ++k) {
        const std::uint64_t n = next++;
        const fl::LogResult r = log_record(client, schemas, n, buf);
        if (r == fl::LogResult::Ok) {
          acked.push_back(n);
        } else if (r == fl::LogResult::QueueFull) {
          refused.push_back(n);
        } else {
          fail_child(fd, "logging " + describe_n(n) + " returned " + std::string(fl::to_string(r)));
        }
      }
      client.flush();
      // flush() also returns when a batch was dropped (journal full or I/O error): those
      // records are not acknowledged, and this test allows no such drop.
      const fl::OfflineStatus s = client.get_offline_status();
      if (s.dropped.journal_full != 0 || s.dropped.journal_error != 0 || s.dropped.invalid != 0) {
        fail_child(fd, "the journal dropped records: journal_full " +
                           std::to_string(s.dropped.journal_full) + ", journal_error " +
                           std::to_string(s.dropped.journal_error) + ", invalid " +
                           std::to_string(s.dropped.invalid));
      }
      if (!refused.empty()) send(fd, Tag::Refused, refused);
      send(fd, Tag::Acked, acked);
      acked.clear();
      refused.clear();
      if (index_of(next) > kPerChild / 2) fail_child(fd, "a child logged 5e8 records: runaway");
      // Quiet moments now and then, so that some kills land between bursts.
      if (rng() % 4 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
    }
  } catch (const std::exception& e) {
    fail_child(fd, std::string("exception: ") + e.what());
  } catch (...) {
    fail_child(fd, "unknown exception");
  }
}

// A forked child with the read end of its pipe; killed and reaped at the latest when
// this object dies, so no test failure leaves a process behind.
class ChildProcess {
 public:
  explicit ChildProcess(const ChildConfig& config) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
    std::fflush(nullptr);  // the child must not inherit unwritten output
    pid_ = ::fork();
    if (pid_ < 0) throw std::system_error(errno, std::generic_category(), "fork");
    if (pid_ == 0) {
      ::close(fds[0]);
      child_main(config, fds[1]);
    }
    ::close(fds[1]);
    fd_ = fds[0];
  }
  ~ChildProcess() {
    kill_and_reap();
    if (fd_ >= 0) ::close(fd_);
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  int fd() const { return fd_; }

  // SIGKILLs the child (if it still runs) and reaps it. Returns its wait status.
  int kill_and_reap() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      while (::waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
      }
      pid_ = -1;
    }
    return status_;
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  int status_ = 0;
};

enum class ReadResult { Data, Timeout, Eof };

// Waits for data until `deadline` (microsecond precision) and appends what it reads.
ReadResult read_some(int fd, Inbox& inbox, Clock::time_point deadline) {
  const auto left = std::max(Clock::duration::zero(), deadline - Clock::now());
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
  const timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  pollfd p{fd, POLLIN, 0};
  const int rc = ::ppoll(&p, 1, &ts, nullptr);
  if (rc < 0) {
    if (errno == EINTR) return ReadResult::Data;
    throw std::system_error(errno, std::generic_category(), "ppoll");
  }
  if (rc == 0) return ReadResult::Timeout;
  char buf[1 << 16];
  const ssize_t r = ::read(fd, buf, sizeof buf);
  if (r < 0) {
    if (errno == EINTR) return ReadResult::Data;
    throw std::system_error(errno, std::generic_category(), "read");
  }
  if (r == 0) return ReadResult::Eof;
  inbox.append(buf, static_cast<std::size_t>(r));
  return ReadResult::Data;
}

// ---- What the parent knows, and what it found wrong ------------------------------------

struct Ledger {
  // n -> the flush (1-based, counted per child) whose return acknowledged it.
  std::unordered_map<std::uint64_t, std::uint32_t> acked_by_flush;
  std::map<std::uint64_t, std::vector<std::uint64_t>> acked;  // by generation
  std::map<std::uint64_t, std::uint32_t> flushes;             // by generation
  std::unordered_set<std::uint64_t> refused;                  // QueueFull: never committed
};

// Problems by category: every one is counted, the first few of each are kept verbatim.
class Problems {
 public:
  void add(const std::string& category, std::string detail) {
    auto& c = by_category_[category];
    if (c.examples.size() < kShown) c.examples.push_back(std::move(detail));
    ++c.count;
  }
  bool empty() const { return by_category_.empty(); }
  std::string report() const {
    std::string out;
    for (const auto& [category, c] : by_category_) {
      out += "  " + std::to_string(c.count) + " x " + category + ":\n";
      for (const auto& e : c.examples) out += "      " + e + "\n";
      if (c.count > c.examples.size()) {
        out += "      ... and " + std::to_string(c.count - c.examples.size()) + " more\n";
      }
    }
    return out;
  }

 private:
  static constexpr std::size_t kShown = 12;
  struct Category {
    std::size_t count = 0;
    std::vector<std::string> examples;
  };
  std::map<std::string, Category> by_category_;
};

// Reads the journal read-only and checks it, incrementally: each scan_new() reads the
// records at or above the next_seq of the previous call (so one child's additions), and
// keeps what it saw, so duplicates and sequence reuse are found across calls too. The
// journal is open only inside scan_new(), never while a child is forked.
class JournalAudit {
 public:
  JournalAudit(std::filesystem::path dir, std::int64_t earliest_ts_ns)
      : dir_(std::move(dir)), earliest_ts_ns_(earliest_ts_ns) {}

  // `only_generation`: the child whose records may be new (nullopt: any, for a scan from
  // scratch); `last_generation`: the newest child that ran.
  void scan_new(std::optional<std::uint64_t> only_generation, std::uint64_t last_generation,
                const Ledger& ledger, Problems& problems) {
    std::unique_ptr<detail::Journal> journal;
    try {
      journal = detail::Journal::open_read_only(dir_);
    } catch (const std::exception& e) {
      problems.add("the journal does not open read-only", e.what());
      return;
    }
    const detail::JournalCounts counts = journal->counts();
    if (counts.next_seq < next_seq_) {
      problems.add("next_seq went backwards",
                   std::to_string(next_seq_) + " -> " + std::to_string(counts.next_seq));
    }
    const std::int64_t latest_ts_ns = wall_ns() + std::int64_t{60'000'000'000};
    TextBuffer buf;
    for (std::size_t s = 0; s < detail::kRecordSets; ++s) {
      const auto set = static_cast<detail::RecordSet>(s);
      auto visit = [&](std::uint64_t seq, std::span<const std::byte> bytes) {
        ++records_;
        const std::string where = location(set, seq);
        if (seq >= counts.next_seq) {
          problems.add("sequence not below the journal's next_seq",
                       where + " >= next_seq " + std::to_string(counts.next_seq));
        }
        if (auto [it, fresh] = seq_set_.emplace(seq, set); !fresh) {
          problems.add("sequence used twice", where + " and " + location(it->second, seq));
        }
        detail::DecodedRecord r;
        if (auto err = detail::decode_record(bytes, r); !err.empty()) {
          problems.add("damaged record", where + ": " + err);
          return;
        }
        const std::optional<std::uint64_t> n = n_of(r);
        if (!n) {
          problems.add("record without an integer input \"n\" first", where);
          return;
        }
        const std::string who = describe_n(*n) + " at " + where;
        const std::uint64_t gen = generation_of(*n);
        if (gen == 0 || gen > last_generation) {
          problems.add("record of a child that never ran", who);
          return;
        }
        if (only_generation && gen != *only_generation) {
          problems.add("record of an earlier child at or above the previous next_seq",
                       who + " (previous next_seq " + std::to_string(next_seq_) + ")");
        }
        if (set == detail::RecordSet::Failed) {
          problems.add("record in the failed set (nothing uploads here)", who);
        } else if (static_cast<std::size_t>(priority_of(*n)) != s) {
          problems.add("record in another priority's set", who);
        }
        if (auto diff = compare_record(expected_record(*n, buf), r); !diff.empty()) {
          problems.add("record differs from what was logged", who + ": " + diff);
        }
        if (r.attempts != 0 || r.last_status != 0 || !r.reason.empty()) {
          problems.add("fresh record with upload state", who);
        }
        if (r.ts_ns < earliest_ts_ns_ || r.ts_ns > latest_ts_ns) {
          problems.add("implausible timestamp", who + ": ts " + std::to_string(r.ts_ns));
        }
        if (ledger.refused.count(*n) != 0) {
          problems.add("record refused by the hot path (QueueFull) is in the journal", who);
        }
        if (auto [it, fresh] = by_n_.emplace(*n, std::make_pair(set, seq)); !fresh) {
          problems.add("record present twice", describe_n(*n) + " at " +
                                                   location(it->second.first, it->second.second) +
                                                   " and at " + where);
        }
        auto& range = seq_range_.try_emplace(gen, UINT64_MAX, 0).first->second;
        range.first = std::min(range.first, seq);
        range.second = std::max(range.second, seq);
      };
      for (std::uint64_t from = next_seq_;;) {
        from = journal->scan(set, from, 4096, visit);
        if (from == 0) break;
      }
    }
    std::uint64_t entries = 0;
    for (std::uint64_t e : counts.entries) entries += e;
    if (entries != records_) {
      problems.add("journal entry count differs from the records read",
                   std::to_string(entries) + " entries, " + std::to_string(records_) + " read");
    }
    // A reopened journal must continue above every earlier child's sequences.
    for (auto it = seq_range_.begin(); it != seq_range_.end() && std::next(it) != seq_range_.end();
         ++it) {
      const auto& [gen, range] = *it;
      const auto& [next_gen, next_range] = *std::next(it);
      if (range.second >= next_range.first) {
        problems.add("a later child's sequences are not above an earlier child's",
                     "child " + std::to_string(gen) + " up to seq " + std::to_string(range.second) +
                         ", child " + std::to_string(next_gen) + " from seq " +
                         std::to_string(next_range.first));
      }
    }
    next_seq_ = counts.next_seq;
  }

  // Every record acknowledged to child `generation`'s parent must be in the journal.
  void check_acked(std::uint64_t generation, const Ledger& ledger, Problems& problems) const {
    const auto it = ledger.acked.find(generation);
    if (it == ledger.acked.end()) return;
    const auto flushes = ledger.flushes.find(generation);
    for (std::uint64_t n : it->second) {
      if (by_n_.count(n) != 0) continue;
      problems.add("acknowledged record missing from the journal",
                   describe_n(n) + ", acknowledged by flush #" +
                       std::to_string(ledger.acked_by_flush.at(n)) + " of the " +
                       std::to_string(flushes->second) + " its child reported");
    }
  }

  std::uint64_t next_seq() const { return next_seq_; }
  std::uint64_t records() const { return records_; }

 private:
  static std::string location(detail::RecordSet set, std::uint64_t seq) {
    return "'" + std::string(detail::record_set_name(set)) + "' seq " + std::to_string(seq);
  }

  const std::filesystem::path dir_;
  const std::int64_t earliest_ts_ns_;
  std::uint64_t next_seq_ = 0;  // the journal's next_seq at the last scan
  std::uint64_t records_ = 0;   // records read, all scans together
  std::unordered_map<std::uint64_t, std::pair<detail::RecordSet, std::uint64_t>> by_n_;
  std::unordered_map<std::uint64_t, detail::RecordSet> seq_set_;
  // generation -> {lowest, highest} sequence of its records
  std::map<std::uint64_t, std::pair<std::uint64_t, std::uint64_t>> seq_range_;
};

// ---- One child's life -------------------------------------------------------------------

enum class KillPlan {
  AfterDelay,    // `param` microseconds after Ready: mostly in the middle of a burst
  AfterFlushes,  // as soon as the `param`-th Acked message arrives (or the first after
                 // kFlushPlanMaxAge): right after a flush() returned
  DuringStartup  // `param` microseconds after fork, within the time the previous child took
                 // to open: while the Client creates its queues and opens the journal
};

struct Round {
  std::uint64_t generation = 0;
  KillPlan plan = KillPlan::AfterDelay;
  std::uint64_t param = 0;
  // What happened:
  bool ready = false;
  std::uint64_t ready_next_seq = 0;
  std::uint64_t ready_queue_size = 0;
  std::uint32_t flushes = 0;
  std::size_t acked = 0;
  std::size_t refused = 0;
  std::size_t cut_bytes = 0;        // a message cut short by the kill
  bool killed_after_flush = false;  // an Acked message triggered the kill
  double alive_ms = 0;              // from Ready (or fork, if never ready) to the kill
  double startup_ms = 0;            // from fork to Ready
  std::string plan_text() const {
    switch (plan) {
      case KillPlan::AfterDelay:
        return "kill " + std::to_string(param / 1000) + " ms after Ready";
      case KillPlan::AfterFlushes:
        return "kill right after flush #" + std::to_string(param) + " or the first past " +
               std::to_string(kFlushPlanMaxAge.count()) + " ms";
      case KillPlan::DuringStartup:
        return "kill " + std::to_string(param) + " us after fork";
    }
    return "?";
  }
};

// `startup_us`: how long the previous child took from fork to Ready.
Round plan_round(std::uint64_t generation, std::uint64_t startup_us, std::mt19937_64& rng) {
  Round r;
  r.generation = generation;
  if (generation % 8 == 0) {
    r.plan = KillPlan::DuringStartup;
    r.param = rng() % std::max<std::uint64_t>(startup_us, 1000);
  } else if (generation % 3 == 0) {
    r.plan = KillPlan::AfterFlushes;
    r.param = 1 + rng() % 30;
  } else {
    r.plan = KillPlan::AfterDelay;
    r.param = 2000 + rng() % 98'000;
  }
  return r;
}

// Runs child `round.generation` to its kill, recording in `ledger` what it acknowledged
// and in `problems` anything wrong with the child itself.
void run_child(const ChildConfig& config, Round& round, const JournalAudit& audit, Ledger& ledger,
               Problems& problems) {
  ChildProcess child(config);
  const auto forked = Clock::now();
  auto ready_at = forked;
  auto kill_at = round.plan == KillPlan::DuringStartup
                     ? forked + std::chrono::microseconds(round.param)
                     : forked + kReadyTimeout;
  Inbox inbox;
  bool got_error = false;

  auto handle = [&](const Message& m, bool child_alive) {
    const std::string from = "child " + std::to_string(round.generation);
    if (!round.ready && m.tag != Tag::Ready && m.tag != Tag::Error) {
      problems.add(
          "child protocol error",
          from + " sent tag " + std::to_string(static_cast<unsigned>(m.tag)) + " before Ready");
    }
    switch (m.tag) {
      case Tag::Ready:
        round.ready = true;
        ready_at = Clock::now();
        round.startup_ms = std::chrono::duration<double, std::milli>(ready_at - forked).count();
        round.ready_next_seq = m.words.at(0);
        round.ready_queue_size = m.words.at(1);
        if (child_alive && round.plan == KillPlan::AfterDelay) {
          kill_at = ready_at + std::chrono::microseconds(round.param);
        } else if (child_alive && round.plan == KillPlan::AfterFlushes) {
          kill_at = ready_at + kMaxLife;
        }
        // The reopened journal must resume above everything already in it, and show it.
        if (round.ready_next_seq < audit.next_seq()) {
          problems.add("a reopened journal resumed below its next_seq",
                       from + " opened at next_seq " + std::to_string(round.ready_next_seq) +
                           ", the journal had next_seq " + std::to_string(audit.next_seq()));
        }
        if (round.ready_queue_size != audit.records()) {
          problems.add("a reopened journal reports a wrong queue_size",
                       from + " saw queue_size " + std::to_string(round.ready_queue_size) +
                           ", the journal holds " + std::to_string(audit.records()));
        }
        break;
      case Tag::Acked:
        ++round.flushes;
        ledger.flushes[round.generation] = round.flushes;
        for (std::uint64_t n : m.words) {
          if (!ledger.acked_by_flush.emplace(n, round.flushes).second) {
            problems.add("child protocol error",
                         from + " acknowledged " + describe_n(n) + " twice");
          }
          ledger.acked[round.generation].push_back(n);
        }
        round.acked += m.words.size();
        if (child_alive && round.plan == KillPlan::AfterFlushes && !round.killed_after_flush &&
            (round.flushes >= round.param || Clock::now() - ready_at >= kFlushPlanMaxAge)) {
          kill_at = Clock::now();
          round.killed_after_flush = true;
        }
        break;
      case Tag::Refused:
        ledger.refused.insert(m.words.begin(), m.words.end());
        round.refused += m.words.size();
        break;
      case Tag::Error:
        got_error = true;
        problems.add("a child failed", from + ": " + m.text);
        break;
      default:
        problems.add("child protocol error",
                     from + " sent unknown tag " + std::to_string(static_cast<unsigned>(m.tag)));
    }
  };

  // Listen until the kill moment (or until the child ends by itself, which is a failure).
  bool eof = false;
  while (!eof && Clock::now() < kill_at) {
    eof = read_some(child.fd(), inbox, kill_at) == ReadResult::Eof;
    while (auto m = inbox.next()) handle(*m, /*child_alive=*/true);
  }
  const auto killed = Clock::now();
  const int status = child.kill_and_reap();
  // What the child wrote before it died is still in the pipe: those are acknowledgements.
  while (!eof) eof = read_some(child.fd(), inbox, Clock::now() + 10s) != ReadResult::Data;
  while (auto m = inbox.next()) handle(*m, /*child_alive=*/false);
  round.cut_bytes = inbox.pending_bytes();
  round.alive_ms = std::chrono::duration<double, std::milli>(killed - ready_at).count();

  const std::string from = "child " + std::to_string(round.generation);
  if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) && !got_error) {
    const std::string how =
        WIFEXITED(status)     ? "exited with code " + std::to_string(WEXITSTATUS(status))
        : WIFSIGNALED(status) ? "died of signal " + std::to_string(WTERMSIG(status))
                              : "wait status " + std::to_string(status);
    problems.add("a child ended before it was killed",
                 from + " " + how + " after " + std::to_string(round.flushes) +
                     " flushes (a sanitizer's or the runtime's report, if any, is on stderr)");
  }
  if (!round.ready && round.plan != KillPlan::DuringStartup && !got_error) {
    problems.add("a child did not open the journal",
                 from + " sent no Ready within " + std::to_string(kReadyTimeout.count()) + " s");
  }
}

std::uint64_t test_seed() {
  if (const char* s = std::getenv("FLIGHTLOG_CRASH_SEED"); s != nullptr && *s != '\0') {
    return std::strtoull(s, nullptr, 10);
  }
  return std::random_device{}();
}

const char* durability_name(fl::Durability d) {
  switch (d) {
    case fl::Durability::Full:
      return "Full";
    case fl::Durability::NoMetaSync:
      return "NoMetaSync";
    case fl::Durability::Periodic:
      return "Periodic";
    case fl::Durability::None:
      return "None";
  }
  return "?";
}

void run_crash_scenario(fl::Durability durability) {
  const std::uint64_t seed = test_seed();
  const std::string mode = durability_name(durability);
  SCOPED_TRACE("durability " + mode + ", FLIGHTLOG_CRASH_SEED=" + std::to_string(seed));
  std::printf("[ crash    ] durability %s, FLIGHTLOG_CRASH_SEED=%llu\n", mode.c_str(),
              static_cast<unsigned long long>(seed));
  const auto started = Clock::now();

  fl::test::TempDir tmp;
  const std::filesystem::path dir = tmp / "journal";
  std::mt19937_64 rng(seed);
  const std::int64_t earliest_ts_ns = wall_ns() - std::int64_t{60'000'000'000};
  Ledger ledger;
  JournalAudit audit(dir, earliest_ts_ns);
  int kills_after_ready = 0;
  std::uint64_t startup_us = 0;  // of the last child that reached Ready
  int kills_after_flush = 0;
  std::size_t refused = 0;

  for (std::uint64_t gen = 1; gen <= kChildren; ++gen) {
    Round round = plan_round(gen, startup_us, rng);
    const ChildConfig config{dir, durability, gen, rng()};
    Problems problems;
    run_child(config, round, audit, ledger, problems);
    const bool journal_exists = std::filesystem::exists(dir / "data.mdb");
    if (journal_exists || round.ready) audit.scan_new(gen, gen, ledger, problems);
    audit.check_acked(gen, ledger, problems);

    if (round.ready) {
      ++kills_after_ready;
      startup_us = static_cast<std::uint64_t>(round.startup_ms * 1000);
    }
    if (round.killed_after_flush) ++kills_after_flush;
    refused += round.refused;
    char line[400];
    if (round.ready) {
      std::snprintf(line, sizeof line,
                    "opened in %5.1f ms, killed %6.1f ms later (%s): %3u flushes acked %6zu "
                    "records, %zu refused%s",
                    round.startup_ms, round.alive_ms, round.plan_text().c_str(), round.flushes,
                    round.acked, round.refused,
                    round.cut_bytes != 0 ? ", a message cut by the kill" : "");
    } else {
      std::snprintf(line, sizeof line, "killed %.1f ms after fork, before Ready (%s)",
                    round.alive_ms, round.plan_text().c_str());
    }
    std::printf("[ crash    ] child %2llu: %s; journal: %llu records, next_seq %llu\n",
                static_cast<unsigned long long>(gen), line,
                static_cast<unsigned long long>(audit.records()),
                static_cast<unsigned long long>(audit.next_seq()));
    ASSERT_TRUE(problems.empty()) << "after child " << gen << " (" << round.plan_text() << "):\n"
                                  << problems.report();
  }

  // From scratch: the whole journal, every acknowledgement, every sequence.
  Problems problems;
  JournalAudit full(dir, earliest_ts_ns);
  full.scan_new(std::nullopt, kChildren, ledger, problems);
  for (std::uint64_t gen = 1; gen <= kChildren; ++gen) full.check_acked(gen, ledger, problems);
  ASSERT_TRUE(problems.empty()) << "final check of the whole journal:\n" << problems.report();
  EXPECT_EQ(full.records(), audit.records());
  EXPECT_GE(kills_after_ready, kMinKillsAfterReady);
  EXPECT_GT(ledger.acked_by_flush.size(), 0u);

  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  std::printf(
      "[ crash    ] durability %s: %llu children, %d killed while logging (%d right after a "
      "flush), %llu during start-up; %zu records acknowledged, all present once; %llu in the "
      "journal; %zu refused (QueueFull), none present; %.1f s\n",
      mode.c_str(), static_cast<unsigned long long>(kChildren), kills_after_ready,
      kills_after_flush, static_cast<unsigned long long>(kChildren) - kills_after_ready,
      ledger.acked_by_flush.size(), static_cast<unsigned long long>(full.records()), refused,
      seconds);
}

TEST(Crash, KillNineKeepsEveryAcknowledgedRecordOnceDurabilityFull) {
  run_crash_scenario(fl::Durability::Full);
}

TEST(Crash, KillNineKeepsEveryAcknowledgedRecordOnceDurabilityNone) {
  run_crash_scenario(fl::Durability::None);
}

}  // namespace
