// flightlog/options.hpp: every knob of a Client, with its default and its trade-off.
//
// The Client constructor validates all of them and throws flightlog::Error naming the
// first bad one, so a typo fails at start-up rather than on the hot path.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "flightlog/value.hpp"

namespace flightlog {

// What a committed record survives. See the README's durability table for figures.
enum class Durability : std::uint8_t {
  // Every batch commit is flushed to the device (LMDB's default: data fdatasync, then
  // the meta page with O_DSYNC). Survives kill -9 and power loss once committed.
  // Cost: two device flushes per batch; batches grow while a flush is in progress, so
  // throughput stays high, but each commit waits for the device.
  Full,
  // Data pages are flushed per commit, the meta page is not (MDB_NOMETASYNC). Survives
  // kill -9; a power loss may undo the last committed batch but never corrupts the
  // journal. One device flush per batch.
  NoMetaSync,
  // No flush per commit (MDB_NOSYNC); the writer flushes every `periodic_sync_interval`
  // and on flush(). Survives kill -9; a power loss may lose (LMDB says: or damage) what
  // was committed since the last periodic flush.
  Periodic,
  // No flush at all (MDB_NOSYNC); the OS writes pages back when it likes. Survives
  // kill -9 only. For journals you can afford to lose with the machine.
  None,
};

// The body format of uploads. See the README's "Formats" section.
enum class UploadFormat : std::uint8_t {
  // POST to `endpoint`, one JSON object per line (application/x-ndjson),
  // `Authorization: Bearer <api_key>`, an `Idempotency-Key` per batch.
  Ndjson,
  // POST `INSERT INTO <clickhouse_table> FORMAT JSONEachRow` to a ClickHouse HTTP(S)
  // interface, with X-ClickHouse-User / X-ClickHouse-Key (the api_key).
  ClickHouse,
};

// Where the hot path's timestamp comes from. Either way a record carries wall-clock
// nanoseconds since the Unix epoch (the writer converts; see src/hot_path/clock.hpp).
enum class ClockSource : std::uint8_t {
  // A clock word the writer's drain thread refreshes as it runs, which the hot path
  // merely loads: about 1 ns, a cache hit between refreshes. A record's time is the
  // word's at the call: never later than the call, and earlier by at most the time
  // since the last refresh: under 50 us while the writer is draining, up to
  // `writer_poll_interval` (1 ms by default) after an idle spell, longer only while
  // the drain thread is starved of CPU. The sequence keeps the order of a thread's
  // records whatever their times. Right for monitoring (records are grouped by
  // second, minute or day), and the one clock cheap enough for a call to cost about
  // what the bare queue's enqueue costs (bench/results/latest.md).
  Cached,
  // Read per call: the CPU's time-stamp counter where it is invariant (x86-64), else
  // CLOCK_REALTIME through the vDSO. Nanosecond resolution, but one rdtsc per call
  // costs 7-25 ns by the machine (virtual machines are at the slow end): on the 2-core
  // VM of bench/results, as much as the whole raw enqueue of a quiet moment. For
  // callers who correlate a record's time with other clocks to the microsecond.
  Precise,
};

// What log_prediction() does when the in-memory queue of a priority is full (the
// writer cannot keep up, or the journal is stalled).
enum class FullPolicy : std::uint8_t {
  // Return LogResult::QueueFull at once and count the drop. The hot path never waits.
  Drop,
  // Spin, then yield, then sleep (50 us doubling to 1 ms) until the writer frees a slot
  // (or the client closes). Nothing is dropped, but the caller's thread stalls for as
  // long as the writer does; a long stall costs it little CPU, and a freed slot is seen
  // within about a millisecond.
  Block,
};

struct Options {
  // --- The SDK's options -----------------------------------------------------------

  // Credential for the uploader. Held in memory only: never written to the journal,
  // the status, error messages or dumps.
  std::string api_key;

  // Upload URL (https://...). Empty = journal only, nothing is uploaded.
  std::string endpoint;

  // true: records are committed to the crash-durable journal in `offline_dir`.
  // false (memory only): the journal lives in RAM (/dev/shm) and dies with the process;
  // see the README's "Memory-only mode" for what a crash loses.
  bool enable_offline = true;

  // Directory of the journal. Created with mode 0700 if missing; one Client (in any
  // process) owns it at a time. Must not be group- or world-writable.
  std::filesystem::path offline_dir = "./flightlog_offline";

  // Upload the journal in the background every `offline_sync_interval` (needs an
  // endpoint). Off: only sync_offline_queue() uploads.
  bool offline_auto_sync = true;
  std::chrono::seconds offline_sync_interval{60};

  // Most records the journal keeps queued (not counting failed ones). Beyond it the
  // oldest records of the lowest priority are evicted, and each eviction is counted.
  // Default 1,000,000 (about 100-200 MB of journal for prediction-sized records).
  // 0 = unlimited (bounded only by `journal_max_bytes`).
  std::size_t offline_max_queue_size = 1'000'000;

  // --- Uploader -------------------------------------------------------------------

  UploadFormat upload_format = UploadFormat::Ndjson;
  std::string clickhouse_table = "flightlog_records";  // ClickHouse only
  std::string clickhouse_user = "default";             // ClickHouse only

  // A batch holds at most this many records and this many bytes of body (before gzip).
  // Larger batches mean fewer requests; smaller ones lose less work to one failure.
  // Default 20000 records, so the 4 MiB bound decides for prediction-sized records
  // (~12,700 W2 records): measured on two 2-core VMs, 5-10% faster to a loopback
  // receiver and 12-31% faster to ClickHouse than 5000 (bench/results/upload.md).
  // Background sync also starts as soon as this many records wait (unless the last
  // upload failed: see backoff_base). Records: 1 to kMaxUploadBatchRecords (100000);
  // bytes: 1 KiB to 256 MiB.
  std::size_t upload_batch_max_records = 20000;
  std::size_t upload_batch_max_bytes = std::size_t{4} << 20;
  static constexpr std::size_t kMaxUploadBatchRecords = 100'000;

  // gzip request bodies: ~4.6x fewer bytes on the wire for prediction records, at some
  // CPU per record on the uploader thread (never on the hot path).
  bool upload_gzip = false;

  // Attempts that count (retryable failures: 5xx, 408, 429, reset or timeout after
  // sending) before a record moves to the failed set.
  std::uint16_t max_attempts = 3;

  // Full-jitter exponential backoff: wait uniform(0, min(cap, base * 2^n)) after the
  // n-th consecutive failure; `Retry-After` is honoured as a lower bound (up to 1 hour:
  // a longer one is taken as 1 hour). The backoff holds automatic passes back; it does
  // not bring them forward: after a failed upload the next automatic pass starts at the
  // later of the backoff's end and the next `offline_sync_interval` tick, even when a
  // full batch waits (that starts a pass early only while uploads succeed). So with the
  // defaults a record's 3 attempts span about two intervals, and a short outage does
  // not use them up. sync_offline_queue() does not wait for it.
  std::chrono::milliseconds backoff_base{1000};
  std::chrono::milliseconds backoff_cap{300000};

  // Each phase of a request has its own timeout; none can hang the client or its
  // destructor for longer.
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds handshake_timeout{5000};
  std::chrono::milliseconds request_timeout{30000};
  std::chrono::milliseconds shutdown_timeout{2000};

  // Trusted CAs: empty = the system's (/etc/ssl/certs); else a PEM file. Peer
  // verification and host-name checks are always on; TLS 1.2 is the minimum.
  std::filesystem::path ca_file;

  // Allows an http:// endpoint (no TLS) to a loopback host only (localhost, 127.0.0.0/8,
  // ::1; any other host is refused by the constructor): the api_key and the records
  // travel in clear text, which only this machine may see. For tests.
  bool allow_insecure_http = false;

  // --- Hot path --------------------------------------------------------------------

  // Most threads that may log into this client at the same time. Each gets a
  // guaranteed share of every priority's queue: 4096 slots of 64 bytes (a W1
  // prediction in the schema form takes one slot; named fields and strings take more).
  // All of it is preallocated and touched at construction: about 1 MiB per thread
  // (8 MiB by default), asked of the kernel as transparent huge pages, with one more
  // 2 MiB page per client for the objects every call reads (fewer TLB misses after an
  // idle pause; where huge pages are off, the same memory comes in 4 KiB pages). A thread
  // beyond the limit gets LogResult::Invalid; a thread that exits frees its share for
  // the next.
  std::size_t max_producer_threads = 8;

  // Per priority (indexed by Priority): what a call does when its queue is full.
  // Default: CRITICAL blocks, the others drop and count.
  std::array<FullPolicy, kPriorityCount> full_policy{FullPolicy::Block, FullPolicy::Drop,
                                                     FullPolicy::Drop, FullPolicy::Drop};

  // Largest record a call may log, in bytes of its in-memory form (names, values and
  // strings, plus a few bytes each). Larger records are rejected with
  // LogResult::TooLarge and counted. Keep records small: journal records above ~2 KB
  // go to LMDB overflow pages. Default 16 KiB, at most 64 KiB (a quarter of a thread's
  // share of a queue).
  std::size_t max_record_bytes = 16 * 1024;

  // See ClockSource. Default Cached: a record costs about as much as the raw enqueue,
  // and its time is good to a millisecond. Precise buys per-call nanoseconds for one
  // rdtsc per call (bench/results/latest.md measures both).
  ClockSource clock_source = ClockSource::Cached;

  // --- Writer and journal ----------------------------------------------------------

  // See Durability. Default Full: measured on a 2-core VM, batching hides the flush
  // cost well enough that the default can survive power loss (bench/results).
  Durability durability = Durability::Full;

  // A batch is one LMDB write transaction. The writer drains the queues into the next
  // batch while the previous one commits (group commit), so a batch holds whatever
  // arrived during a commit, up to `batch_max_records`; past that the queues absorb the
  // rest. While the committer is idle, a batch is handed over as soon as the queues are
  // empty or it is `batch_max_delay` old, once `min_commit_interval` allows. Larger =
  // more absorbed during a slow device flush (each record costs ~150 bytes of batch
  // memory, twice: two batches alternate).
  std::size_t batch_max_records = 65536;
  std::chrono::microseconds batch_max_delay{5000};

  // The shortest time between two commits while records trickle in: a batch that is
  // not full is handed to the commit thread no sooner than this after the previous one.
  // flush(), the destructor and a full batch never wait for it; under a heavy load the
  // commits' own device flushes space them further apart anyway.
  // Why: in Durability::Full every commit costs two device flushes, and each flush ends
  // in disk interrupts and wake-ups on the machine's cores, logging threads' cores among
  // them. Without a floor on the interval, a stream of small bursts is committed burst
  // by burst (bench/results/latency-commit-interval.md: 4-5x more disk interrupts, and
  // a logging thread preempted 2-18x as often as beside the bare queue).
  // The trade-off: a record nobody flush()ed may wait up to this much longer before it
  // is committed, so a kill -9 may take that much more of the unflushed tail with it
  // (what flush() acknowledged is never at risk). Default 10 ms; 0 = commit as soon as
  // the queues are empty and the commit thread is free.
  std::chrono::microseconds min_commit_interval{10000};

  // How long the writer sleeps when every queue is empty. The hot path never wakes it
  // (that would be a system call), so this plus `min_commit_interval` bounds the commit
  // latency of a lone record, and, with ClockSource::Cached, how far a record's time may
  // trail its call after an idle spell. Shorter = fresher commits and times, more idle
  // wake-ups.
  std::chrono::microseconds writer_poll_interval{1000};

  // Durability::Periodic only: how often the writer flushes the journal to the device.
  std::chrono::milliseconds periodic_sync_interval{100};

  // The journal's memory map starts at `journal_initial_bytes` and doubles whenever it
  // fills, up to `journal_max_bytes`. At the limit, records may fill 7/8 of it (the
  // rest keeps deletes possible: delivery, cleanup and eviction free space for new
  // records, and logging resumes by itself); what does not fit is dropped and counted
  // (reason: journal full). The file never shrinks. A growth refused by the process's
  // address-space limit (ulimit -v) makes the map's size its limit for the time being
  // (7/8 for records, as above); growing is tried again every 10 s.
  std::size_t journal_initial_bytes = std::size_t{64} << 20;  // 64 MiB
  std::size_t journal_max_bytes = std::size_t{4} << 30;       // 4 GiB

  // --- Threads -------------------------------------------------------------------

  // CPUs (numbered as in /proc/cpuinfo) that flightlog's own threads may run on: the
  // writer's drain and commit threads, the uploader and its io thread (named fl-drain,
  // fl-commit, fl-upload and fl-io in `top -H`). Empty (the default): wherever the
  // scheduler puts them.
  //
  // Set it when your logging threads are pinned, to keep flightlog off their cores. The
  // commit thread waits on the disk for every batch and is woken where the disk's
  // interrupt is handled; the drain thread wakes every `writer_poll_interval`. When no
  // core is idle, the scheduler runs them on a logging thread's core and preempts that
  // thread mid-call: on a small machine, that is what the hot path's latency tail is
  // made of (README, "Keeping flightlog off your hot cores", has the measurements).
  // Best: CPUs none of your hot threads use, among them the one that takes the journal
  // disk's interrupts (see /proc/interrupts). The trade-off: pinned threads cannot move
  // to an idle core, so if the CPUs you give them are busy, commits and uploads wait.
  // The constructor throws flightlog::Error for a CPU the machine does not have, or a
  // set none of whose CPUs this process may use.
  std::vector<unsigned> background_cpus;
};

}  // namespace flightlog
