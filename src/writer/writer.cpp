#include "writer/writer.hpp"

#include <cstring>

namespace flightlog::detail {

namespace {

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

}  // namespace

Writer::Writer(const WriterConfig& config, Journal& journal, QueueSet& queues,
               ProducerRegistry& producers, SchemaTable& schemas, WriterCounters& counters)
    : config_(config),
      journal_(journal),
      queues_(queues),
      producers_(producers),
      schemas_(schemas),
      counters_(counters) {
  drain_cap_ = kDrainChunkSlots + config_.max_record_slots;
  drain_buf_.reset(new Slot[drain_cap_]);
  arena_.reserve(config_.batch_max_records * 128);
  batch_.reserve(config_.batch_max_records);
  last_device_sync_ = last_calibration_ = std::chrono::steady_clock::now();
  thread_ = std::thread([this] { run(); });
}

Writer::~Writer() {
  stop();
}

void Writer::stop() {
  stop_.store(true, std::memory_order_release);
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

bool Writer::flush(std::optional<std::chrono::steady_clock::time_point> deadline) {
  const std::uint64_t ticket = flush_requested_.fetch_add(1, std::memory_order_seq_cst) + 1;
  wake_.notify_one();
  std::unique_lock lock(mu_);
  auto done = [&] { return flush_done_ >= ticket || exited_.load(); };
  if (!deadline) {
    done_.wait(lock, done);
    return flush_done_ >= ticket;
  }
  return done_.wait_until(lock, *deadline, done) && flush_done_ >= ticket;
}

std::string Writer::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

void Writer::run() {
  for (;;) {
    const bool stopping = stop_.load(std::memory_order_acquire);
    const std::uint64_t ticket = flush_requested_.load(std::memory_order_seq_cst);
    const bool drained = drain_pass();
    commit_batch();

    const auto now = std::chrono::steady_clock::now();
    if (config_.durability == Durability::Periodic &&
        (now - last_device_sync_ >= config_.periodic_sync_interval ||
         (drained && ticket > flush_done_))) {
      journal_.sync_to_device();
      last_device_sync_ = now;
    }
    if (now - last_calibration_ >= std::chrono::seconds(1)) {
      clock_.recalibrate();
      last_calibration_ = now;
    }
    if (drained) {
      std::lock_guard lock(mu_);
      if (ticket > flush_done_) {
        flush_done_ = ticket;
        done_.notify_all();
      }
    }
    run_commands();
    if (stopping && drained) break;
    if (drained) {
      std::unique_lock lock(mu_);
      wake_.wait_for(lock, config_.poll_interval, [&] {
        return stop_.load(std::memory_order_relaxed) ||
               flush_requested_.load(std::memory_order_relaxed) > flush_done_ || !commands_.empty();
      });
    }
  }
  // Commands queued until now run here; later ones run on their caller (see call()).
  for (;;) {
    run_commands();
    std::lock_guard lock(mu_);
    if (commands_.empty()) {
      exited_.store(true);
      done_.notify_all();
      break;
    }
  }
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

bool Writer::drain_pass() {
  batch_start_ = std::chrono::steady_clock::now();
  bool batch_full = false;
  for (std::size_t p = 0; p < queues_.size(); ++p) {
    const std::size_t n = producers_.count();
    for (std::size_t i = 0; i < n; ++i) {
      drain_producer(p, producers_.at(i), batch_full);
      if (batch_full) return false;
    }
  }
  return true;
}

void Writer::drain_producer(std::size_t priority, Producer& producer, bool& batch_full) {
  SlotQueue& q = queues_[priority];
  ProducerToken& token = *producer.tokens[priority];
  for (;;) {
    std::size_t n = q.try_dequeue_bulk_from_producer(token, drain_buf_.get(), kDrainChunkSlots);
    if (n == 0) return;
    std::size_t i = 0;
    while (i < n) {
      const SlotHeader h = read_slot_header(drain_buf_[i].bytes);
      std::size_t need = h.n_slots;
      if (need == 0 || need > config_.max_record_slots) {
        bump(counters_.malformed);  // cannot happen unless memory is corrupted
        ++i;
        continue;
      }
      if (i + need > n) {
        // The rest of this record is still in the producer's queue: a record is
        // published whole, so it is there now. Move the head to the front and fetch it.
        std::size_t have = n - i;
        std::memmove(drain_buf_.get(), drain_buf_.get() + i, have * sizeof(Slot));
        while (have < need) {
          const std::size_t got =
              q.try_dequeue_bulk_from_producer(token, drain_buf_.get() + have, need - have);
          if (got == 0) std::this_thread::yield();
          have += got;
        }
        encode(drain_buf_.get(), need, static_cast<Priority>(priority));
        break;
      }
      encode(drain_buf_.get() + i, need, static_cast<Priority>(priority));
      i += need;
    }
    if (batch_.size() >= config_.batch_max_records || arena_.size() >= kMaxBatchBytes ||
        std::chrono::steady_clock::now() - batch_start_ >= config_.batch_max_delay) {
      batch_full = true;
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
  const std::size_t mark = arena_.size();
  RecordEncoder enc(arena_);
  enc.begin(static_cast<std::uint8_t>(h.kind), p, clock_.to_unix_ns(h.raw_time), name, h.n_inputs,
            h.n_outputs);
  const std::byte* tags = cur;
  if (def != nullptr) cur += n;
  for (std::size_t i = 0; i < n; ++i) {
    Value::Type type;
    std::string_view field_name;
    if (def != nullptr) {
      type = static_cast<Value::Type>(tags[i]);
      field_name = i < h.n_inputs ? def->inputs[i] : def->outputs[i - h.n_inputs];
    } else {
      type = static_cast<Value::Type>(cur[0]);
      const auto len = static_cast<std::size_t>(cur[1]);
      field_name = {reinterpret_cast<const char*>(cur + 2), len};
      cur += 2 + len;
    }
    const std::size_t size = value_size(type, cur);
    if (size == 0 || cur + size > end) {
      arena_.resize(mark);
      bump(counters_.malformed);
      return;
    }
    enc.field(field_name, type, cur, size);
    cur += size;
  }
  const std::size_t offset = enc.finish();
  batch_.push_back(PendingRecord{p, static_cast<std::uint32_t>(offset),
                                 static_cast<std::uint32_t>(arena_.size() - offset)});
}

void Writer::commit_batch() {
  if (batch_.empty()) return;
  const CommitOutcome out = journal_.commit(arena_, batch_, config_.max_queued);
  bump(counters_.committed, out.committed);
  bump(counters_.journal_full, out.dropped_journal_full);
  bump(counters_.journal_error, out.dropped_error);
  if (!out.error.empty()) {
    std::lock_guard lock(mu_);
    last_error_ = out.error;
  }
  batch_.clear();
  arena_.clear();
}

}  // namespace flightlog::detail
