// flightlog/client.hpp: the Client, its hot-path calls, status and maintenance.
//
// Threads: every member function may be called from any thread at any time, except the
// destructor, which must not race with calls on the same Client.
#pragma once

#include <array>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <ranges>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "flightlog/error.hpp"
#include "flightlog/options.hpp"
#include "flightlog/value.hpp"

namespace flightlog {

// What happened to one logged record. The logging calls never throw.
enum class LogResult : std::uint8_t {
  Ok = 0,     // accepted into memory; committed to the journal shortly (see flush())
  QueueFull,  // dropped: the priority's queue was full and its policy is Drop
  TooLarge,   // rejected: larger than Options::max_record_bytes
  Invalid,    // rejected: value count does not match the schema, more than 255 fields on
              // a side (inputs, output, an event's fields), a name over 255 bytes, a
              // schema of another client, or more threads than max_producer_threads
  Closed,     // rejected: the client's destructor has begun (a call racing it; see ~Client)
};

// "ok", "queue_full", "too_large", "invalid", "closed".
std::string_view to_string(LogResult r) noexcept;

// Field names registered once with Client::schema(), so that the hot loop passes only
// values. Cheap to copy; valid for the life of the client that made it.
class Schema {
 public:
  Schema() = default;
  std::size_t input_count() const noexcept { return n_inputs_; }
  std::size_t output_count() const noexcept { return n_outputs_; }

 private:
  friend class Client;
  std::uint64_t client_id_ = 0;
  std::uint32_t id_ = 0;
  std::uint16_t n_inputs_ = 0;
  std::uint16_t n_outputs_ = 0;
};

// Records that left (or never entered) the pipeline without being uploaded, by reason.
// Counted since this Client started, except where noted as persistent.
struct DropCounts {
  std::array<std::uint64_t, kPriorityCount> queue_full{};  // in-memory queue full (Drop)
  std::uint64_t too_large = 0;                             // over max_record_bytes
  std::uint64_t invalid = 0;                               // see LogResult::Invalid
  std::uint64_t closed = 0;                                // logged during shutdown
  std::uint64_t journal_full = 0;   // batch did not fit even at journal_max_bytes
  std::uint64_t journal_error = 0;  // batch lost to an I/O error of the journal
  // Persistent (kept in the journal across restarts):
  std::array<std::uint64_t, kPriorityCount> evicted{};  // over offline_max_queue_size
  std::uint64_t cleaned_up = 0;                         // removed by cleanup_offline_queue
};

struct OfflineStatus {
  // Records waiting to be synced: committed in the journal plus still in memory.
  std::size_t queue_size = 0;
  std::array<std::size_t, kPriorityCount> queue_size_by_priority{};  // journal only
  std::size_t in_memory = 0;     // accepted, not yet committed: in the queues (counted in
                                 // 64-byte slots, approximate) or in the writer's batches
  std::size_t failed_count = 0;  // records in the journal's failed set
  std::optional<std::chrono::system_clock::time_point> last_sync_time;  // last upload
  // Uploaded since start and then deleted from the journal. A record evicted or cleaned
  // up while its upload was in flight is counted in `dropped` instead, not in both.
  std::uint64_t synced_total = 0;
  std::uint64_t failed_total = 0;  // moved to the failed set since start
  // Records sent in a request whose fate is unknown (reset or timeout after sending), or
  // sent again on a fresh connection after a kept-alive one took the whole request and
  // then failed without an answer: the receiver may get them twice; ids let it drop the
  // duplicates.
  std::uint64_t possibly_duplicated = 0;
  // Time left of the current backoff (0 if none). After a failed upload the next
  // automatic pass also waits for the next offline_sync_interval tick, so it may be later.
  std::chrono::milliseconds current_backoff{0};
  int consecutive_failures = 0;
  std::string last_error;              // of the last failed upload; never contains the api_key
  std::string connection_state;        // "disabled" (no endpoint), "idle", "connected", ...
  std::uint64_t committed_total = 0;   // committed since start
  std::uint64_t commits_total = 0;     // write transactions (batches) that committed them; in
                                       // Durability::Full each cost two device flushes
  std::uint64_t next_seq = 0;          // sequence the next committed record gets
  std::string journal_id;              // instance id, the prefix of every record id
  std::size_t journal_map_bytes = 0;   // current map size
  std::size_t journal_used_bytes = 0;  // pages in use (data + free list)
  // Why the journal last dropped records (dropped.journal_full or .journal_error) or
  // last failed to flush to the device (device_sync_failures), e.g. "journal is full at
  // journal_max_bytes (...)"; empty if it never did.
  std::string last_journal_error;
  // Durability::Periodic: device flushes (periodic or for flush()) that failed since
  // start; last_journal_error says why. What was committed before one is in the journal
  // but may not survive a power loss; see flush().
  std::uint64_t device_sync_failures = 0;
  DropCounts dropped;
};

struct SyncResult {
  std::size_t synced = 0;  // accepted by the endpoint in this pass (as synced_total counts)
  std::size_t failed = 0;  // moved to the failed set in this pass
};

// Any range of strings (std::vector<std::string>, std::span<const std::string_view>, an
// array of const char*, ...): what Client::schema() accepts for names known at run time.
template <typename R>
concept NameRange = std::ranges::input_range<const R> &&
    std::convertible_to<std::ranges::range_reference_t<const R>, std::string_view>;

class Client {
 public:
  // Opens (or creates) the journal and starts the writer thread. Throws flightlog::Error
  // naming the bad option, an unusable or foreign journal directory, a journal of an
  // unknown format version, or a directory already owned by another Client.
  explicit Client(Options options);

  // Commits everything logged before it, then stops the writer. As with any object,
  // every call on this Client must have returned before its destructor begins: stop the
  // threads that log to it, or make them stop using it, first. A call that races with
  // the destructor anyway is undefined behaviour (a thread blocked on a full CRITICAL
  // queue would use freed memory); most such calls see LogResult::Closed, a diagnosis,
  // not a guarantee.
  ~Client();

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // --- Hot path (noexcept, lock-free, allocation-free in the steady state) ---------
  // A thread's first call allocates its producer; later calls only copy values into a
  // preallocated queue slot. A record is *acknowledged* once committed: flush().

  // Named form. The names are compared with the shapes this thread logged before (at
  // most 8 remembered, each of at most 8 fields with names of at most 16 bytes); a
  // remembered shape is logged like a Schema, values only. The first call of a new
  // shape registers it (a lock and an allocation, at most 8 times per thread); other
  // shapes copy their names into the record. The journal holds the same either way.
  LogResult log_prediction(std::initializer_list<Field> inputs, std::initializer_list<Field> output,
                           Priority priority = Priority::Normal) noexcept;

  // Schema form: values only, in the schema's order.
  LogResult log_prediction(const Schema& schema, std::initializer_list<Value> inputs,
                           std::initializer_list<Value> output,
                           Priority priority = Priority::Normal) noexcept;

  // A generic event: a name (at most 255 bytes) and at most 255 fields. Dumped with
  // "type":"event".
  LogResult log_event(std::string_view name, std::initializer_list<Field> fields,
                      Priority priority = Priority::Normal) noexcept;

  // Run-time forms of the three calls above, for fields known only when the program
  // runs (a feature vector whose length comes from the model, names read from its
  // metadata). Same records, same results, same cost per value. Pass a span for both
  // sides: keep a std::vector<Value> (or std::array) of the row and assign its values in
  // the loop; a braced list does not convert to a std::span in C++20.
  LogResult log_prediction(std::span<const Field> inputs, std::span<const Field> output,
                           Priority priority = Priority::Normal) noexcept;
  LogResult log_prediction(const Schema& schema, std::span<const Value> inputs,
                           std::span<const Value> output,
                           Priority priority = Priority::Normal) noexcept;
  LogResult log_event(std::string_view name, std::span<const Field> fields,
                      Priority priority = Priority::Normal) noexcept;

  // Registers names once, outside the hot loop. Throws flightlog::Error for a name over
  // 255 bytes, a name repeated within a side (inputs, or output), more than 255 names
  // per side, or more than 65535 schemas per client (named-form shapes remembered as
  // implicit schemas count towards that limit too). The logging calls do not check
  // names for repeats (it would cost every call); the dump and uploads render a repeated
  // key with "#2", "#3"... appended.
  Schema schema(std::initializer_list<std::string_view> inputs,
                std::initializer_list<std::string_view> outputs);
  // The same for names in any range of strings (std::vector<std::string>, a span of
  // std::string_view, ...), e.g. read from a model's metadata.
  template <NameRange In, NameRange Out>
  Schema schema(const In& inputs, const Out& outputs) {
    // Copied, not viewed: a range may make each name afresh (a transform view), and such
    // a name is gone by the next iteration.
    std::vector<std::string> names;
    for (auto&& name : inputs) names.emplace_back(std::string_view(name));
    const std::size_t n_inputs = names.size();
    for (auto&& name : outputs) names.emplace_back(std::string_view(name));
    const std::vector<std::string_view> views(names.begin(), names.end());
    return schema_of(std::span<const std::string_view>(views).first(n_inputs),
                     std::span<const std::string_view>(views).subspan(n_inputs));
  }

  // --- Durability --------------------------------------------------------------------

  // Returns once everything logged (by any thread) before the call is committed to
  // the journal under Options::durability, or dropped and counted (journal full).
  // Durability::Periodic: flush() also flushes the device. If that fails (or a periodic
  // device flush failed since the last flush() that returned), flush() still returns,
  // without retrying (after a failed fdatasync Linux may mark the unwritten pages clean,
  // so a retry that succeeds proves nothing): the records are committed, and are
  // uploaded as usual, but may not survive a power loss. The status counts it
  // (device_sync_failures, last_journal_error); use flush_for() to be told. A failure
  // is told to every flush waiting when the writer notices it, which may include the
  // flush cleanup_offline_queue() makes for itself; device_sync_failures counts all.
  void flush();
  // As flush(), giving up after `timeout`; returns whether flush() would have returned
  // with its guarantee: true once everything logged before the call is committed or
  // counted as dropped (get_offline_status().dropped says which); false on timeout, and
  // false in Durability::Periodic when a device flush failed as described for flush()
  // (the next call, if its device flush succeeds, returns true again). A timeout too
  // long for the steady clock to represent (milliseconds::max()) waits like flush().
  bool flush_for(std::chrono::milliseconds timeout);

  // --- Crash flush (opt-in, process-wide) ----------------------------------------------

  // Installs a handler for SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGTERM and SIGINT
  // that, before the process dies, commits to the journal what every Client alive at
  // that moment still holds in memory (records accepted with LogResult::Ok but not yet
  // committed), waiting at most `budget` in total. Call it once, early (before creating
  // threads that may crash); later calls only change the budget. Clients created before
  // or after the call are both covered. Throws flightlog::Error if sigaction fails.
  //
  // Chaining: the previous action of each signal is saved at install time. After the
  // flush, a previous handler function is called with the same arguments (siginfo and
  // context when it was installed with SA_SIGINFO); a previous default action is
  // restored and the signal raised again, so the process still dies of that signal
  // (exit status, core dump) as it would have without flightlog. A SIGTERM or SIGINT that
  // the process ignores at install time is left ignored. Install other handlers (crash
  // reporters) before this call, or make them chain too: a handler installed later
  // replaces this one.
  //
  // What it does in the signal handler: only async-signal-safe operations. It reads a
  // fixed table of the live Clients (lock-free atomic pointers), asks each one's writer
  // for a flush with one atomic increment, and waits by polling atomics with
  // clock_gettime and nanosleep; the writer's own threads (not the handler) drain the
  // queues and commit, as flush() would. It takes no lock, allocates nothing and does
  // no I/O itself. The records it commits carry the Options::durability of their Client.
  //
  // What it cannot guarantee (the records still in memory are then lost, exactly as
  // without this handler; nothing already committed is ever affected):
  //   - SIGKILL, power loss and the kernel's OOM killer cannot be caught;
  //   - the budget is a bound, not a promise: records not committed when it runs out
  //     are lost (the writer needs about writer_poll_interval to notice, plus one commit;
  //     with Durability::Full that includes the device's sync time);
  //   - if the crash is in a flightlog writer thread itself, or memory (the queues, the
  //     heap, LMDB's map) is corrupted, or the crashing thread held a lock the writer
  //     needs (for example inside malloc), the flush cannot complete and is abandoned
  //     when the budget runs out;
  //   - a signal arriving on a writer thread is not flushed from there (it would wait
  //     for itself); the writer threads block SIGTERM and SIGINT so that those signals,
  //     when sent to the process, are delivered to another thread;
  //   - a fault raised while the flush runs goes straight to the previous action;
  //   - at most 64 Clients at a time are covered; further Clients are not flushed.
  // Sanitizer builds: AddressSanitizer installs its own SIGSEGV/SIGBUS/SIGFPE handlers;
  // run with ASAN_OPTIONS=handle_segv=0:handle_sigbus=0:handle_sigfpe=0 (or install this
  // handler after ASan's, which chains to it) for these signals to reach flightlog.
  static void install_crash_flush(
      std::chrono::milliseconds budget = std::chrono::milliseconds(200));

  // --- Status and maintenance ----------------------------------------------------------

  OfflineStatus get_offline_status() const;

  // Uploads the journal now (one pass, ignoring any backoff) and returns how many
  // records were synced and how many moved to the failed set in this pass. The pass
  // covers the records committed when it starts (flush() first to include the latest);
  // records logged meanwhile wait for the next one, so it returns even while logging
  // outpaces the upload. Returns zeros when no endpoint is set.
  SyncResult sync_offline_queue();

  // Moves failed records back to the queue (all, or those of one priority) with their
  // attempts reset and their ids unchanged. Returns how many. offline_max_queue_size
  // holds for them too: beyond it the oldest queued records of the lowest priority are
  // evicted (and counted in dropped.evicted) at once, which may be some of those moved.
  // Throws flightlog::Error, having moved none, if the journal's failed set cannot be
  // read to its end (a damaged page: flightlog-dump --verify shows where) or the journal
  // cannot be written; the message names LMDB's reason.
  std::size_t retry_failed(std::optional<Priority> only = std::nullopt);

  // Deletes queued and failed records whose timestamp is older than now - older_than,
  // and returns how many. Throws flightlog::Error for a negative age, and when part of
  // the journal cannot be read to its end (a damaged page: flightlog-dump --verify shows
  // where) or written: the other parts are still cleaned, and the message says how many
  // records were deleted (they stay deleted; dropped.cleaned_up counts them) and names
  // LMDB's reason.
  template <typename Rep, typename Period>
  std::size_t cleanup_offline_queue(std::chrono::duration<Rep, Period> older_than) {
    return cleanup_older_than(
        std::chrono::duration_cast<std::chrono::duration<double>>(older_than));
  }

  class Impl;  // internal; declared here so the implementation can name it

 private:
  std::size_t cleanup_older_than(std::chrono::duration<double> older_than);
  Schema schema_of(std::span<const std::string_view> inputs,
                   std::span<const std::string_view> outputs);
  std::unique_ptr<Impl> impl_;
};

}  // namespace flightlog
