#include "writer/writer.hpp"

#include <signal.h>

#include <cstring>

#include "core/threads.hpp"

namespace flightlog::detail {

namespace {

// How often the drain thread refreshes a cached clock while it runs. 50 us: fine enough
// for any record's time, rare enough that producers' cores seldom miss on the clock's
// cache line while records flow.
constexpr std::chrono::microseconds kCachedClockPeriod{50};

constexpr std::size_t kDrainChunkSlots = 1024;
// A batch also closes at this many encoded bytes (bounds the arena and the txn).
constexpr std::size_t kMaxBatchBytes = std::size_t{64} << 20;

// Size of an encoded value at `p` (slot and journal share the value encoding).
std::size_t value_size(Value::Type type, const std::byte* p) noexcept {
  switch (type) {
    case Value::Type::Double:
    case Value::Type::Int:
      return 8;
    case Value::Type::Bool:
      return 1;
    case Value::Type::String: {
      std::uint32_t len;
      std::memcpy(&len, p, 4);
      return 4 + std::size_t{len};
    }
  }
  return 0;
}

// Set on the drain and commit threads; read by the crash-flush signal handler, so it
// uses the initial-exec model (no lazy allocation on first access).
[[gnu::tls_model("initial-exec")]] constinit thread_local bool t_writer_thread = false;

// Marks the calling thread as a writer thread, and keeps SIGTERM and SIGINT off it: a
// signal sent to the process is then delivered to another thread, whose crash-flush
// handler can wait for this one (the signal's action is the same on every thread).
void enter_writer_thread() noexcept {
  t_writer_thread = true;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

}  // namespace

Writer::Writer(const WriterConfig& config, Journal& journal, QueueSet& queues,
               ProducerRegistry& producers, SchemaTable& schemas, WriterCounters& counters)
    : config_(config),
      journal_(journal),
      queues_(queues),
      producers_(producers),
      schemas_(schemas),
      counters_(counters) {
  drain_buf_.reset(new Slot[kDrainChunkSlots + config_.max_record_slots]);
  for (auto& b : batches_) {
    b.arena.reserve(std::min<std::size_t>(config_.batch_max_records * 128, kMaxBatchBytes));
    b.records.reserve(config_.batch_max_records);
  }
  last_device_sync_ = last_calibration_ = last_clock_tick_ = std::chrono::steady_clock::now();
  if (config_.cached_clock != nullptr) config_.cached_clock->refresh();
  commit_thread_ = std::thread([this] { commit_loop(); });
  name_thread(commit_thread_, "fl-commit");
  yield_on_wakeup(commit_thread_);
  drain_thread_ = std::thread([this] { drain_loop(); });
  name_thread(drain_thread_, "fl-drain");
  yield_on_wakeup(drain_thread_);
}

Writer::~Writer() {
  stop();
}

void Writer::stop() {
  stop_.store(true, std::memory_order_release);
  {
    std::lock_guard lock(mu_);  // pairs with the sleepers' predicate checks
  }
  drain_wake_.notify_all();
  if (drain_thread_.joinable()) drain_thread_.join();
  commit_wake_.notify_all();
  if (commit_thread_.joinable()) commit_thread_.join();
}

bool Writer::flush(std::optional<std::chrono::steady_clock::time_point> deadline) {
  const std::uint64_t ticket = flush_requested_.fetch_add(1, std::memory_order_seq_cst) + 1;
  std::unique_lock lock(mu_);
  drain_wake_.notify_one();
  auto done = [&] { return flush_done_ >= ticket || commit_exited_; };
  if (!deadline) {
    done_.wait(lock, done);
  } else {
    done_.wait_until(lock, *deadline, done);
  }
  // A later failure may have raised sync_failed_through_ past a ticket that completed
  // well before this thread woke: then this reports a failure it need not, never the
  // reverse.
  return flush_done_ >= ticket && sync_failed_through_ < ticket;
}

std::uint64_t Writer::emergency_request() noexcept {
  return flush_requested_.fetch_add(1, std::memory_order_seq_cst) + 1;
}

bool Writer::emergency_done(std::uint64_t ticket) const noexcept {
  return flush_done_published_.load(std::memory_order_acquire) >= ticket ||
         exited_published_.load(std::memory_order_acquire);
}

bool Writer::on_writer_thread() noexcept {
  return t_writer_thread;
}

// ---- Drain thread ------------------------------------------------------------------------

void Writer::drain_loop() {
  enter_writer_thread();
  std::uint64_t handed_ticket = 0;
  for (;;) {
    const bool stopping = stop_.load(std::memory_order_acquire);
    const std::uint64_t ticket = flush_requested_.load(std::memory_order_seq_cst);
    tick_clock(std::chrono::steady_clock::now());
    const bool drained = drain_pass();
    // Only a ticket no batch has carried yet: a batch whose ticket is already handed over
    // completes no flush, and would make the commit thread wait for the device
    // (Durability::Periodic) for nothing, on every commit from the first flush() on.
    if (drained && ticket > std::max(filling_->ticket, handed_ticket)) filling_->ticket = ticket;

    std::unique_lock lock(mu_);
    // Drained, not records: a batch holding only malformed records is handed over too,
    // so its commit takes them out of in_batches.
    auto has_work = [&] { return filling_->drained > 0 || filling_->ticket > handed_ticket; };
    // A batch of records that merely trickled in waits until min_commit_interval has
    // passed since the last hand-over; a flush, a stop or a full batch goes at once.
    const auto now = std::chrono::steady_clock::now();
    const auto due = last_handover_ + config_.min_commit_interval;
    const bool urgent = filling_->ticket > handed_ticket || stopping || filling_full();
    if (has_work() && ready_ == nullptr && (urgent || now >= due)) {
      // Hand over; the other buffer is free, since the commit thread clears ready_ only
      // after it has finished with it.
      handed_ticket = std::max(handed_ticket, filling_->ticket);
      ready_ = filling_;
      filling_ = (filling_ == &batches_[0]) ? &batches_[1] : &batches_[0];
      last_handover_ = now;
      commit_wake_.notify_one();
      continue;  // drain again at once: records may be waiting
    }
    if (stopping && drained && !has_work()) break;
    if (has_work() && filling_full()) {
      // The commit thread is busy and this batch is full: wait for the commit (a device
      // flush may take tens of ms). The queues absorb what arrives meanwhile. With a
      // cached clock, wake every poll interval (at least its 50 us period) to tick it.
      const auto free = [&] { return ready_ == nullptr; };
      if (config_.cached_clock != nullptr) {
        drain_wake_.wait_for(lock, std::max(config_.poll_interval, kCachedClockPeriod), free);
      } else {
        drain_wake_.wait(lock, free);
      }
      continue;
    }
    if (drained) {
      // Every queue was empty. Holding records the commit thread is still busy with the
      // last batch: sleep until it is free. Otherwise (holding nothing, or a batch not
      // yet due) sleep until a flush, a stop, the poll interval or the batch's due time.
      if (has_work() && ready_ != nullptr) {
        drain_wake_.wait_for(lock, config_.poll_interval, [&] { return ready_ == nullptr; });
      } else {
        const auto sleep = has_work() ? std::min<std::chrono::steady_clock::duration>(
                                            config_.poll_interval, due - now)
                                      : config_.poll_interval;
        drain_wake_.wait_for(lock, sleep, [&] {
          return stop_.load(std::memory_order_relaxed) ||
                 flush_requested_.load(std::memory_order_relaxed) > handed_ticket;
        });
      }
    }
  }
  std::lock_guard lock(mu_);
  drain_exited_ = true;
  commit_wake_.notify_one();
}

void Writer::tick_clock(std::chrono::steady_clock::time_point now) noexcept {
  if (config_.cached_clock != nullptr && now - last_clock_tick_ >= kCachedClockPeriod) {
    config_.cached_clock->refresh();
    last_clock_tick_ = now;
  }
  if (now - last_calibration_ >= std::chrono::seconds(1)) {
    clock_.recalibrate();
    last_calibration_ = now;
  }
}

bool Writer::filling_full() const {
  return filling_->records.size() >= config_.batch_max_records ||
         filling_->arena.size() >= kMaxBatchBytes;
}

bool Writer::drain_pass() {
  pass_start_ = std::chrono::steady_clock::now();
  if (filling_full()) return false;
  bool stop_pass = false;
  for (std::size_t p = 0; p < queues_.size(); ++p) {
    const std::size_t n = producers_.count();
    for (std::size_t i = 0; i < n; ++i) {
      drain_producer(p, producers_.at(i), stop_pass);
      if (stop_pass) return false;
    }
  }
  return true;
}

void Writer::drain_producer(std::size_t priority, Producer& producer, bool& stop_pass) {
  SlotQueue& q = queues_[priority];
  ProducerToken& token = producer.token(priority);
  Slot* buf = drain_buf_.get();
  for (;;) {
    // Counted at once, not as each record is encoded, and flagged while neither is done:
    // a status read in between would otherwise find these records in neither the queue
    // nor a batch (see WriterCounters::in_batches).
    counters_.dequeuing.store(true, std::memory_order_seq_cst);
    const std::size_t n = q.try_dequeue_bulk_from_producer(token, buf, kDrainChunkSlots);
    if (n > 0) count_drained(buf, n);
    counters_.dequeuing.store(false, std::memory_order_release);
    if (n == 0) return;
    std::size_t i = 0;
    while (i < n) {
      const SlotHeader h = read_slot_header(buf[i].bytes);
      const std::size_t need = h.n_slots;
      if (need == 0 || need > config_.max_record_slots) {
        bump(counters_.malformed);  // cannot happen unless memory is corrupted
        ++i;
        continue;
      }
      if (i + need > n) {
        // The rest of this record is still in the producer's queue: a record is
        // published whole (one bulk enqueue), so it is there now. Move the head to the
        // front and fetch the rest.
        std::size_t have = n - i;
        std::copy(buf + i, buf + n, buf);  // ranges may overlap; copying forward is safe
        while (have < need) {
          const std::size_t got = q.try_dequeue_bulk_from_producer(token, buf + have, need - have);
          if (got == 0) std::this_thread::yield();
          have += got;
        }
        encode(buf, need, static_cast<Priority>(priority));
        break;
      }
      encode(buf + i, need, static_cast<Priority>(priority));
      i += need;
    }
    // Stop when the batch is full, or the pass is old enough that the commit thread
    // should get what we have (if it is free; drain_loop decides).
    const auto now = std::chrono::steady_clock::now();
    tick_clock(now);
    if (filling_full() || now - pass_start_ >= config_.batch_max_delay) {
      stop_pass = true;
      return;
    }
    if (n < kDrainChunkSlots) return;  // the producer looked empty
  }
}

void Writer::encode(const Slot* slots, std::size_t n_slots, Priority p) {
  const std::byte* base = slots[0].bytes;
  const std::byte* end = base + n_slots * kSlotBytes;
  const SlotHeader h = read_slot_header(base);
  const std::byte* cur = base + kSlotHeaderBytes;
  std::string_view name(reinterpret_cast<const char*>(cur), h.name_len);
  cur += h.name_len;
  const std::size_t n = std::size_t{h.n_inputs} + h.n_outputs;

  const SchemaDef* def = nullptr;
  if (h.schema_id != 0) {
    def = schemas_.get(h.schema_id);
    if (def == nullptr || def->inputs.size() != h.n_inputs || def->outputs.size() != h.n_outputs) {
      bump(counters_.malformed);
      return;
    }
  }
  // First walk: the size of every field, and a check that it lies within the record.
  const std::byte* tags = cur;
  if (def != nullptr) cur += schema_tag_bytes(n);
  const std::byte* fields_begin = cur;
  std::size_t fields_bytes = 0;
  for (std::size_t i = 0; i < n; ++i) {
    Value::Type type;
    std::size_t name_len;
    if (def != nullptr) {
      type = static_cast<Value::Type>(tags[i]);
      name_len = i < h.n_inputs ? def->inputs[i].size() : def->outputs[i - h.n_inputs].size();
    } else {
      type = static_cast<Value::Type>(cur[0]);
      name_len = static_cast<std::size_t>(cur[1]);
      cur += 2 + name_len;
    }
    const std::size_t size = cur < end ? value_size(type, cur) : 0;
    if (size == 0 || cur + size > end) {
      bump(counters_.malformed);
      return;
    }
    cur += size;
    fields_bytes += 2 + name_len + size;
  }
  // Second walk: write the record with one arena growth.
  std::vector<std::byte>& arena = filling_->arena;
  RecordEncoder enc(arena);
  enc.begin(static_cast<std::uint8_t>(h.kind), p, clock_.to_unix_ns(h.raw_time), name, h.n_inputs,
            h.n_outputs, fields_bytes);
  cur = fields_begin;
  for (std::size_t i = 0; i < n; ++i) {
    Value::Type type;
    std::string_view field_name;
    if (def != nullptr) {
      type = static_cast<Value::Type>(tags[i]);
      field_name = i < h.n_inputs ? def->inputs[i] : def->outputs[i - h.n_inputs];
    } else {
      type = static_cast<Value::Type>(cur[0]);
      field_name = {reinterpret_cast<const char*>(cur + 2), static_cast<std::size_t>(cur[1])};
      cur += 2 + field_name.size();
    }
    const std::size_t size = value_size(type, cur);
    enc.field(field_name, type, cur, size);
    cur += size;
  }
  const std::size_t offset = enc.finish();
  filling_->records.push_back(PendingRecord{p, static_cast<std::uint32_t>(offset),
                                            static_cast<std::uint32_t>(arena.size() - offset)});
}

bool wait_out_dequeue(const WriterCounters& counters) noexcept {
  // A dequeue takes well under a microsecond per slot: check again a few times first,
  // yielding in between.
  for (int i = 0; i < 256; ++i) {
    if (!counters.dequeuing.load(std::memory_order_acquire)) return true;
    std::this_thread::yield();
  }
  // Then sleep, which (unlike yield) gives the CPU to a thread of lower priority too.
  const auto deadline = std::chrono::steady_clock::now() + kDequeueWaitLimit;
  while (counters.dequeuing.load(std::memory_order_acquire)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  return true;
}

void Writer::count_drained(const Slot* slots, std::size_t n) {
  // The same walk as drain_producer's: a record whose first slot is here counts, the rest
  // of one cut off at the end is counted with its head; a malformed slot counts as one.
  std::size_t records = 0;
  for (std::size_t i = 0; i < n; ++records) {
    const std::size_t need = read_slot_header(slots[i].bytes).n_slots;
    i += (need == 0 || need > config_.max_record_slots) ? 1 : need;
  }
  filling_->drained += records;
  bump(counters_.in_batches, records);
}

// ---- Commit thread -----------------------------------------------------------------------

void Writer::commit_loop() {
  enter_writer_thread();
  for (;;) {
    Batch* batch = nullptr;
    {
      std::unique_lock lock(mu_);
      const auto wait = config_.durability == Durability::Periodic
                            ? std::chrono::duration_cast<std::chrono::microseconds>(
                                  config_.periodic_sync_interval)
                            : std::chrono::microseconds(std::chrono::seconds(1));
      commit_wake_.wait_for(
          lock, wait, [&] { return ready_ != nullptr || !commands_.empty() || drain_exited_; });
      batch = ready_;
      if (batch == nullptr && commands_.empty() && drain_exited_) break;
    }
    if (batch != nullptr) commit(*batch);
    run_commands();
    const auto now = std::chrono::steady_clock::now();
    const bool flush_waits = batch != nullptr && batch->ticket > 0;
    if (config_.durability == Durability::Periodic &&
        (now - last_device_sync_ >= config_.periodic_sync_interval || flush_waits)) {
      if (const int rc = journal_.sync_to_device(); rc != 0) {
        // Not retried: after a failed fdatasync Linux may mark the pages clean, so a
        // second call can succeed without writing them. The records committed since the
        // last good flush are in the journal, but a power loss may take them.
        bump(counters_.device_sync_failures);
        counters_.set_journal_error(std::string("device flush failed: ") + mdb_strerror(rc) +
                                    "; records committed since the last successful flush "
                                    "may not survive a power loss");
        sync_failure_unreported_ = true;
      }
      last_device_sync_ = now;
    }
    if (batch != nullptr) {
      std::lock_guard lock(mu_);
      if (batch->ticket > flush_done_) {
        // The flushes this batch completes cover every record committed before it, so
        // a failed device flush since the last completed flush fails them all, and every
        // flush already asked for too: one of them may be the caller's flush_for(), and
        // this one only the flush cleanup_offline_queue() makes for itself.
        if (sync_failure_unreported_) {
          sync_failed_through_ =
              std::max(batch->ticket, flush_requested_.load(std::memory_order_seq_cst));
          sync_failure_unreported_ = false;
        }
        flush_done_ = batch->ticket;
        flush_done_published_.store(flush_done_, std::memory_order_release);
        done_.notify_all();
      }
      batch->clear();
      ready_ = nullptr;
      drain_wake_.notify_one();
    }
  }
  // Commands queued until now run here; later ones run on their caller (see call()).
  for (;;) {
    run_commands();
    std::lock_guard lock(mu_);
    if (commands_.empty()) {
      commit_exited_ = true;
      exited_published_.store(true, std::memory_order_release);
      done_.notify_all();
      break;
    }
  }
}

void Writer::commit(Batch& batch) {
  if (!batch.records.empty()) {
    const CommitOutcome out = journal_.commit(batch.arena, batch.records, config_.max_queued);
    bump(counters_.committed, out.committed);
    if (out.committed > 0) bump(counters_.commits);
    bump(counters_.journal_full, out.dropped_journal_full);
    bump(counters_.journal_error, out.dropped_error);
    if (!out.error.empty()) counters_.set_journal_error(out.error);
  }
  // Every record of the batch is now committed (the journal has published its counts) or
  // counted as dropped. Release: a status that sees the count lowered then sees those.
  counters_.in_batches.fetch_sub(batch.drained, std::memory_order_release);
}

void Writer::run_commands() {
  for (;;) {
    std::function<void()> cmd;
    {
      std::lock_guard lock(mu_);
      if (commands_.empty()) return;
      cmd = std::move(commands_.front());
      commands_.pop_front();
    }
    cmd();  // packaged_task: exceptions land in the caller's future
  }
}

}  // namespace flightlog::detail
