#include "clickhouse.hpp"

#include <charconv>
#include <stdexcept>

#include "uploader/endpoint.hpp"
#include "uploader/https_client.hpp"

namespace flightlog::demo {

namespace {

std::uint64_t number(std::string_view text, const std::string& what) {
  std::uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || ptr == text.data()) {
    throw std::runtime_error("ClickHouse answered " + what + " with '" +
                             std::string(text.substr(0, 100)) + "'");
  }
  return v;
}

}  // namespace

ClickHouse::ClickHouse(const std::string& url, std::string user, std::string password,
                       const std::filesystem::path& ca_file)
    : user_(std::move(user)), password_(std::move(password)) {
  detail::HttpClientConfig c;
  c.endpoint = detail::parse_endpoint(url, /*allow_plain_http=*/false);
  c.ca_file = ca_file.string();
  c.connect_timeout = std::chrono::milliseconds(5000);
  c.handshake_timeout = std::chrono::milliseconds(5000);
  c.request_timeout = std::chrono::milliseconds(60000);
  c.user_agent = "flightlog-demo";
  client_ = std::make_unique<detail::HttpsClient>(std::move(c));
}

ClickHouse::~ClickHouse() = default;

std::string ClickHouse::run(const std::string& query) {
  detail::HttpRequest req;
  req.content_type = "text/plain; charset=utf-8";
  req.headers = {{"X-ClickHouse-User", user_}};
  if (!password_.empty()) req.headers.emplace_back("X-ClickHouse-Key", password_);
  req.body = query;
  const detail::HttpOutcome out = client_->post(std::move(req));
  if (out.result != detail::HttpResult::Response) {
    const bool tls = out.result == detail::HttpResult::TlsFailure;
    throw std::runtime_error(
        "ClickHouse query failed (" + std::string(detail::http_result_name(out.result)) + "): " +
        out.error + (tls ? " (a server with its own certificate needs its CA: --ca-file)" : ""));
  }
  if (out.status != 200) {
    std::string body = out.body.substr(0, 300);
    while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
    throw std::runtime_error("ClickHouse answered HTTP " + std::to_string(out.status) + ": " +
                             body);
  }
  return out.body;
}

void ClickHouse::create_table(const std::string& table) {
  // The name goes into SQL: letters, digits, '_' and '.' only (as Options requires).
  const bool ok = !table.empty() && table.find_first_not_of(
                                        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789_.") == std::string::npos;
  if (!ok) throw std::runtime_error("--table must be letters, digits, '_' and '.'");
  run("CREATE TABLE IF NOT EXISTS " + table +
      " (id String, seq UInt64, priority String, ts String, ts_ns Int64, type String,"
      " name String, inputs String, output String) ENGINE = ReplacingMergeTree() ORDER BY id");
}

ClickHouseCount ClickHouse::count(const std::string& table, const std::string& journal_id,
                                  std::uint64_t first_seq) {
  // journal_id is hex (the library draws it), so it needs no quoting beyond the quotes.
  const std::string body =
      run("SELECT uniqExact(id), count() FROM " + table + " WHERE id LIKE '" + journal_id +
          "-%' AND seq >= " + std::to_string(first_seq) + " FORMAT TabSeparated");
  const std::size_t tab = body.find('\t');
  if (tab == std::string::npos) throw std::runtime_error("ClickHouse answered '" + body + "'");
  ClickHouseCount c;
  c.unique_ids = number(std::string_view(body).substr(0, tab), "the count of ids");
  c.rows = number(std::string_view(body).substr(tab + 1), "the count of rows");
  return c;
}

}  // namespace flightlog::demo
