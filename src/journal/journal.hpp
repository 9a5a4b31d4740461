// The crash-durable journal: one LMDB environment in the offline directory.
//
// Layout (named databases; keys are 8-byte big-endian sequence numbers, one counter for
// the whole journal, so every database is append-only and MDB_APPEND applies):
//   "critical", "high", "normal", "low"  queued records of each priority
//   "failed"                             records the uploader gave up on
//   "meta"                               format_version, journal_id, next_seq, counters
// Values are records in the format of format/record.hpp.
//
// Threads: the write side (commit, cleanup, sync) belongs to one thread, the writer.
// scan() and counts() may be called from any thread. Growing the map needs every
// transaction of this process closed, so scans hold a shared lock that growth takes
// exclusively; scans are short (bounded by their `limit`) and never pin pages for long.
//
// Errors: open_* throw flightlog::Error with the path and LMDB's reason. Write-side
// failures are returned, never thrown: the writer must keep running.
#pragma once

#include <lmdb.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>

#include "flightlog/error.hpp"
#include "flightlog/options.hpp"
#include "journal/dir_lock.hpp"

namespace flightlog::detail {

inline constexpr std::uint32_t kJournalFormatVersion = 1;

// Thrown by Journal::open_* for a journal of a format version above
// kJournalFormatVersion (written by a newer flightlog), so tools can tell it apart.
class NewerFormatError : public Error {
 public:
  using Error::Error;
};

// The five record sets, in sync order: the four priorities, then failed.
enum class RecordSet : std::uint8_t { Critical = 0, High, Normal, Low, Failed };
inline constexpr std::size_t kRecordSets = 5;
std::string_view record_set_name(RecordSet s) noexcept;  // "critical" ... "failed"

struct JournalConfig {
  std::filesystem::path dir;
  Durability durability = Durability::Full;
  std::size_t initial_map_bytes = std::size_t{64} << 20;
  std::size_t max_map_bytes = std::size_t{4} << 30;
};

struct JournalCounts {
  std::array<std::uint64_t, kRecordSets> entries{};  // per record set
  std::uint64_t next_seq = 0;
  std::array<std::uint64_t, 4> evicted{};  // persistent
  std::uint64_t cleaned_up = 0;            // persistent
  std::size_t map_bytes = 0;
  std::size_t used_bytes = 0;
};

// One record of a batch: its bytes are arena[offset, offset + size).
struct PendingRecord {
  Priority priority;
  std::uint32_t offset;
  std::uint32_t size;
};

// A record's place in the journal.
struct RecordRef {
  RecordSet set;
  std::uint64_t seq;
};

struct CommitOutcome {
  std::size_t committed = 0;
  std::size_t dropped_journal_full = 0;  // the batch did not fit at max_map_bytes
  std::size_t dropped_error = 0;         // the batch hit another LMDB / I/O error
  std::array<std::size_t, 4> evicted{};
  std::string error;  // why records were dropped, if they were
};

class Journal {
 public:
  // Creates the directory (0700) if needed, refuses a symbolic link, a non-directory
  // or a directory writable by group/others, takes the directory lock (one owner, in
  // any process), opens or creates the environment (files 0600), clears stale reader
  // slots and checks the format version. Throws flightlog::Error.
  static std::unique_ptr<Journal> open_for_writing(const JournalConfig& config);

  // Opens an existing journal read-only, without the directory lock, so it can be read
  // while a writer works. It takes a slot in LMDB's reader table (lock.mdb, created if
  // missing), so that a writer does not reuse the pages it reads. Without one: on a
  // read-only file system, and where lock.mdb is missing and cannot be created (a copy
  // in a directory this user may not write; no writer has it open). Throws
  // flightlog::Error if there is no journal, it is empty or not a flightlog journal, its
  // format is unknown, or lock.mdb exists but this user cannot write it.
  static std::unique_ptr<Journal> open_read_only(const std::filesystem::path& dir);

  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  const std::string& journal_id() const noexcept { return journal_id_; }
  const std::filesystem::path& dir() const noexcept { return dir_; }

  // Write side. Appends the records in order with consecutive sequence numbers (one
  // write transaction), evicts the oldest records of the lowest priority while more
  // than `max_queued` are queued (0 = no limit), and persists next_seq and counters in
  // the same transaction. On MDB_MAP_FULL the map doubles (up to max_map_bytes) and the
  // batch is retried; at max_map_bytes, what fits of the batch is stored (in order, in
  // more transactions) and the rest is dropped and counted. Halves are tried in order,
  // and once a first half stores nothing its rest is dropped untried, so a small record
  // behind one that did not fit may be dropped with it (see commit_what_fits).
  CommitOutcome commit(std::span<const std::byte> arena, std::span<const PendingRecord> records,
                       std::size_t max_queued);

  // Write side. As commit(), but all or nothing: a batch that does not fit whole is
  // dropped whole. For callers that must say exactly which records were stored
  // (flightlog-replay --to-journal numbers its copies by their place in the selection).
  CommitOutcome commit_all(std::span<const std::byte> arena, std::span<const PendingRecord> records,
                           std::size_t max_queued);

  // Write side. Deletes queued and failed records stamped before `cutoff_ns`, in
  // transactions of bounded size. Returns how many. Records too damaged to read a
  // timestamp from are kept (the dump reports them). A set that cannot be read to its
  // end (a damaged page) or written does not stop the others: every set gets its turn,
  // then flightlog::Error names the first failure (LMDB's reason, the set, the last key
  // read) and how many records were deleted; those deletes are committed.
  std::size_t cleanup_before(std::int64_t cutoff_ns);

  // --- Delivery bookkeeping (write side; each call is one transaction) ---------------

  // Deletes records the receiver accepted. Returns how many were still there and are
  // now deleted. A batch that cannot be deleted whole (a full map, a damaged page under
  // some of its records) is deleted in halves (down to single records for a full map,
  // to 16 beside damage), so what can be deleted is, and the rest stays (not counted).
  std::size_t remove_delivered(std::span<const RecordRef> refs);

  // Counts one attempt on each queued record; a record reaching `max_attempts` moves to
  // the failed set with `status` and `reason`. Returns how many moved.
  std::size_t count_attempt(std::span<const RecordRef> refs, std::uint16_t max_attempts,
                            std::uint16_t status, std::string_view reason);

  // Moves queued records to the failed set now (the receiver rejected them).
  std::size_t move_to_failed(std::span<const RecordRef> refs, std::uint16_t status,
                             std::string_view reason);

  // Moves failed records (all, or those of one priority) back to their priority's queue
  // with attempts reset, keeping their sequence numbers (and so their ids), then evicts
  // as commit() does while more than `max_queued` are queued (0 = no limit), in the same
  // transaction; the records moved back, being old, may be among those evicted. Returns
  // how many moved. Throws Error, having moved none, if the failed set cannot be read
  // to its end (a damaged page) or the transaction fails.
  std::size_t requeue_failed(std::optional<Priority> only, std::size_t max_queued);

  // Write side. Flushes the environment to the device (mdb_env_sync, forced). Returns 0,
  // or the error (an errno such as EIO): then what was committed since the last good
  // flush may not be on the device. 0 for a journal lost to a failed growth (nothing to
  // flush; its commits report the loss).
  int sync_to_device();

  // Any thread. Visits records of `set` with seq >= from_seq in key order, at most
  // `limit`, inside one short read transaction; `fn` must not keep the spans. Returns
  // the seq to continue from, or 0 when the set has no more records.
  // Throws Error, naming the set, the last seq visited and LMDB's reason, when the
  // read fails (a damaged page, MDB_READERS_FULL) or meets a key that is not an 8-byte
  // sequence number: never mistaken for the end.
  using Visitor = std::function<void(std::uint64_t seq, std::span<const std::byte> bytes)>;
  std::uint64_t scan(RecordSet set, std::uint64_t from_seq, std::size_t limit,
                     const Visitor& fn) const;

  // Any thread. As of the last write-side transaction (read-only journals: as of open
  // or the last refresh_counts()).
  JournalCounts counts() const;
  void refresh_counts();

 private:
  Journal() = default;
  void open_env(unsigned flags, std::size_t initial_map_bytes);
  void open_databases(bool create);
  void load_meta(bool create);
  // Doubles the map, up to max_map_bytes. Returns whether it grew: not at
  // max_map_bytes, nor within kGrowthRetry of a failed growth. It fails when the
  // mmap is refused by an address-space limit (ulimit -v, a container's): the map then
  // keeps its size, which becomes its limit (map_limit_, with the 7/8 record budget of
  // over_record_budget(), so deletes keep working), and the journal goes on as a full
  // one; growth_error_ says why, and growing is tried again kGrowthRetry later. LMDB
  // unmaps the file before it maps it larger, so after a failure the environment is
  // closed and opened again at its old size; should even that fail, the journal is lost
  // for this process (lost_): every transaction fails with MDB_PANIC and the reason,
  // nothing already committed is touched, and reopening it in a new process works.
  bool grow_map_locked();
  // `why`, or the reason the journal is lost (lost_) if it is.
  std::string unless_lost(std::string why) const;
  // commit() in one transaction (growing the map as needed), or not at all.
  CommitOutcome commit_whole(std::span<const std::byte> arena,
                             std::span<const PendingRecord> records, std::size_t max_queued);
  // commit_whole(), else the first half and the rest, recursively (see commit()).
  CommitOutcome commit_what_fits(std::span<const std::byte> arena,
                                 std::span<const PendingRecord> records, std::size_t max_queued);
  // Evicts the oldest records of the lowest priority while more than `max_queued` (0 =
  // no limit) are queued, adds them to `evicted` and writes the persistent totals
  // (evicted_ plus these) to meta. Returns an LMDB code; evicted_ is left to the caller,
  // to update once the transaction commits.
  int evict_over(MDB_txn* txn, std::size_t max_queued, std::array<std::size_t, 4>& evicted);
  // True if the map is at max_map_bytes and the records' pages pass 7/8 of it.
  bool over_record_budget(MDB_txn* txn) const;
  // Commits a no-op write (next_seq rewritten), so pages freed by the last transaction
  // become reusable. Returns an LMDB code.
  int touch_meta();
  int begin_read(MDB_txn** txn) const;  // 0 or the LMDB error (MDB_PANIC once lost_)
  int begin_write(MDB_txn** txn);       // 0 or the LMDB error (MDB_PANIC once lost_)
  // The counts as `txn` sees them. A write transaction's counts are published only
  // after it commits, so the status never runs ahead of what readers can see.
  JournalCounts count_in(MDB_txn* txn) const;
  void publish_counts(const JournalCounts& c);
  void store_counts(MDB_txn* txn) { publish_counts(count_in(txn)); }
  // Makes `bound` the durable limit below which sequences are handed out: one write
  // transaction, then a forced device flush. Why: in the modes that do not flush every
  // commit, a power loss may undo the last batches, and with them next_seq; records of
  // those batches may already have been uploaded, and their seqs handed out again would
  // give new records the ids of delivered ones (a receiver that drops or replaces
  // duplicates by id would lose one of them). Reopening resumes at the reservation at
  // least, which a power loss cannot undo. Reserving kSeqReservation ahead costs one
  // flush per that many records; closing trims the reservation back to next_seq, so
  // only a crash or power loss skips numbers. Returns an LMDB code or errno.
  int reserve_seqs(std::uint64_t bound);
  // Runs `body` in a write transaction and commits it, growing the map and retrying on
  // MDB_MAP_FULL. `body` returns an LMDB code (0 = commit). Returns the final code.
  int write_txn(const std::function<int(MDB_txn*)>& body);
  // Changes one record in update_each(): called with the record's DB, key and bytes;
  // returns an LMDB code (non-zero aborts the transaction) and sets `moved` if it moved
  // the record to the failed set.
  using RecordUpdate = std::function<int(MDB_txn* txn, MDB_dbi from, std::uint64_t seq,
                                         std::span<const std::byte> record, bool& moved)>;
  // Runs `update` on each of `refs` still in the journal, all in one write transaction.
  // Returns how many it moved, or 0 if the transaction failed (nothing changed then).
  std::size_t update_each(std::span<const RecordRef> refs, const RecordUpdate& update);

  std::filesystem::path dir_;
  std::unique_ptr<DirLock> lock_;
  MDB_env* env_ = nullptr;  // nullptr if lost_ and reopening failed
  unsigned env_flags_ = 0;  // as opened: growth reopens with them
  // Why the environment cannot be used any more (it has no map), or empty. Set by the
  // write side after a failed growth, or by a read-only journal that cannot map the
  // size another process grew the file to.
  mutable std::string lost_;
  bool read_only_ = false;
  std::size_t max_map_bytes_ = 0;
  // Write side. The size the map may reach now: max_map_bytes_, or the size at which a
  // growth failed, until a later growth succeeds (see grow_map_locked()).
  std::size_t map_limit_ = 0;
  static constexpr std::chrono::seconds kGrowthRetry{10};
  std::chrono::steady_clock::time_point retry_growth_at_{};
  std::string growth_error_;  // why the map is at map_limit_ < max_map_bytes_
  std::array<MDB_dbi, kRecordSets> dbi_{};
  MDB_dbi meta_dbi_ = 0;
  std::string journal_id_;
  std::uint64_t next_seq_ = 1;  // write side only
  // Sequence reservation (write side; all durability modes but Full). See reserve_seqs().
  bool reserve_seqs_ = false;
  std::uint64_t seq_reserved_ = 0;  // every seq handed out is below it, durably
  std::array<std::uint64_t, 4> evicted_{};
  std::uint64_t cleaned_up_ = 0;

  mutable std::shared_mutex resize_mu_;  // shared: read txns; exclusive: map growth
  mutable std::mutex counts_mu_;
  JournalCounts counts_;
};

}  // namespace flightlog::detail
