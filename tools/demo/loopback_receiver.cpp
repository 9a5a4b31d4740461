#include "loopback_receiver.hpp"

#include <charconv>
#include <fstream>
#include <optional>
#include <stdexcept>

#include "support/test_certs.hpp"
#include "support/tls_receiver.hpp"

namespace flightlog::demo {

namespace {

// The text of the string field `name` in one JSON line, as the uploader renders it
// (ids and priority names need no escapes); empty when absent.
std::string_view string_field(std::string_view line, std::string_view key) {
  const std::size_t at = line.find(key);
  if (at == std::string_view::npos) return {};
  const std::size_t begin = at + key.size();
  const std::size_t end = line.find('"', begin);
  if (end == std::string_view::npos) return {};
  return line.substr(begin, end - begin);
}

}  // namespace

LoopbackReceiver::LoopbackReceiver() = default;

LoopbackReceiver::~LoopbackReceiver() {
  stop();
}

std::string LoopbackReceiver::url() const {
  return "https://127.0.0.1:" + std::to_string(relay_.port()) + "/ingest";
}

void LoopbackReceiver::write_ca(const std::filesystem::path& path) const {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << test::test_certs().ca_pem;
  if (!out.flush()) throw std::runtime_error("cannot write " + path.string());
}

void LoopbackReceiver::expect_journal(std::string journal_id) {
  id_prefix_ = std::move(journal_id) + "-";
}

void LoopbackReceiver::start() {
  if (up_) return;
  receiver_ = std::make_unique<test::TlsReceiver>();
  receiver_->set_responder([this](const test::ReceivedRequest& r) -> std::optional<test::Reply> {
    take(r.body, r.wire_body_bytes);
    return std::nullopt;  // 200
  });
  relay_.open(receiver_->port());
  started_at_ = std::chrono::steady_clock::now();
  up_ = true;
}

void LoopbackReceiver::stop() {
  relay_.stop();
  if (receiver_) receiver_->stop();
}

ReceiverTally LoopbackReceiver::tally() const {
  std::lock_guard lock(mu_);
  return tally_;
}

// Runs on the receiver's thread, once per request.
void LoopbackReceiver::take(std::string_view body, std::size_t wire_bytes) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  ++tally_.requests;
  tally_.wire_bytes += wire_bytes;
  while (!body.empty()) {
    const std::size_t nl = body.find('\n');
    const std::string_view line = body.substr(0, nl);
    body.remove_prefix(nl == std::string_view::npos ? body.size() : nl + 1);
    if (line.empty()) continue;
    ++tally_.lines;
    const std::string_view id = string_field(line, "\"id\":\"");
    const auto priority = parse_priority(string_field(line, "\"priority\":\""));
    std::uint64_t seq = 0;
    const bool ours =
        id.size() > id_prefix_.size() && id.substr(0, id_prefix_.size()) == id_prefix_;
    const char* digits = id.data() + id_prefix_.size();
    if (!ours || !priority ||
        std::from_chars(digits, id.data() + id.size(), seq).ptr != id.data() + id.size()) {
      ++tally_.foreign;
      continue;
    }
    if (!seen_.insert(seq).second) {
      ++tally_.duplicates;
      continue;
    }
    tally_.first_arrivals.push_back({seq, *priority, now});
  }
}

}  // namespace flightlog::demo
