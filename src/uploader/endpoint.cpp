#include "uploader/endpoint.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <string>

#include "flightlog/error.hpp"

namespace flightlog::detail {

namespace {

// RFC 3986's scheme characters. What comes before a "://" is shown in messages only if
// it passes: otherwise it may be a host, userinfo or query of a URL without a scheme,
// with a URL inside its query ("h/?password=s3cret&next=https://...").
bool is_scheme(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
  });
}

// The URL as it may appear in a message: userinfo and query replaced by "***", since
// either may hold a secret (a password, a ClickHouse "?password="). The userinfo is taken
// to run to the URL's last '@', not to the first '/', '?' or '#': a password may hold
// those unescaped (the URL is refused for it, and the message must not show it). The
// query runs from the first '?' to the end. Where the two overlap (an '@' in the query,
// a '?' in a password) all after the scheme is masked. Masking too much costs a message
// some detail, never a secret.
std::string masked(std::string_view url) {
  // The scheme is kept only if it is one: a "://" further on would leave what comes
  // before it unmasked.
  const auto scheme_end = url.find("://");
  const bool has_scheme =
      scheme_end != std::string_view::npos && is_scheme(url.substr(0, scheme_end));
  const std::size_t begin = has_scheme ? scheme_end + 3 : 0;
  std::size_t userinfo_end = url.rfind('@');
  if (userinfo_end == std::string_view::npos || userinfo_end < begin) userinfo_end = begin;
  const auto query = url.find('?');
  std::string out(url.substr(0, begin));
  if (query != std::string_view::npos && query < userinfo_end) return out.append("***");
  if (userinfo_end > begin) out.append("***");
  const std::size_t rest_end = query == std::string_view::npos ? url.size() : query + 1;
  out.append(url.substr(userinfo_end, rest_end - userinfo_end));
  if (query != std::string_view::npos) out.append("***");
  return out;
}

[[noreturn]] void refuse(std::string_view url, const std::string& problem) {
  throw Error("invalid endpoint '" + masked(url) + "': " + problem);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_ipv4_literal(const std::string& host) {
  in_addr a{};
  return inet_pton(AF_INET, host.c_str(), &a) == 1;
}

bool is_ipv6_literal(const std::string& host) {
  in6_addr a{};
  return inet_pton(AF_INET6, host.c_str(), &a) == 1;
}

}  // namespace

namespace {

// Built with append(): GCC 12 at -O3 reports a false -Wrestrict for "[" + host + "]".
std::string bracketed(const std::string& host) {
  if (host.find(':') == std::string::npos) return host;
  std::string h;
  h.reserve(host.size() + 2);
  h.append(1, '[').append(host).append(1, ']');
  return h;
}

}  // namespace

std::string ParsedEndpoint::host_header() const {
  std::string h = bracketed(host);
  std::uint16_t default_port = tls() ? 443 : 80;
  if (port != default_port) h.append(1, ':').append(std::to_string(port));
  return h;
}

std::string ParsedEndpoint::authority() const {
  return bracketed(host).append(1, ':').append(std::to_string(port));
}

bool ParsedEndpoint::is_loopback() const {
  if (host == "localhost") return true;
  in_addr a{};
  if (inet_pton(AF_INET, host.c_str(), &a) == 1) return (ntohl(a.s_addr) >> 24) == 127;
  in6_addr a6{};
  return inet_pton(AF_INET6, host.c_str(), &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

ParsedEndpoint parse_endpoint(std::string_view url, bool allow_plain_http) {
  if (url.empty()) throw Error("invalid endpoint: the URL is empty; give https://host[:port]/path");
  for (std::size_t i = 0; i < url.size(); ++i) {
    auto c = static_cast<unsigned char>(url[i]);
    if (c == ' ') refuse(url, "contains a space at offset " + std::to_string(i));
    if (c < 0x20 || c == 0x7f) {
      refuse(url, "contains a control character at offset " + std::to_string(i));
    }
    if (c >= 0x80) {
      refuse(url,
             "contains a non-ASCII byte at offset " + std::to_string(i) + "; percent-encode it");
    }
  }

  ParsedEndpoint ep;
  auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos || !is_scheme(url.substr(0, scheme_end))) {
    refuse(url, "has no scheme; write it as https://host[:port]/path");
  }
  ep.scheme = lower(url.substr(0, scheme_end));
  if (ep.scheme == "http") {
    if (!allow_plain_http) {
      refuse(url,
             "plain http is refused (records and the api key would travel unencrypted); use "
             "https, or set allow_insecure_http for loopback tests");
    }
    ep.port = 80;
  } else if (ep.scheme == "https") {
    ep.port = 443;
  } else {
    refuse(url, "unknown scheme '" + ep.scheme + "'; only https (and http for tests) is supported");
  }

  std::string_view rest = url.substr(scheme_end + 3);
  auto authority_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view tail =
      authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);

  if (authority.find('@') != std::string_view::npos) {
    refuse(url,
           "contains credentials (user:password@); they are refused in URLs so they cannot "
           "leak into logs and error texts: pass the key as api_key");
  }
  if (tail.find('#') != std::string_view::npos) {
    refuse(url, "contains a fragment ('#...'), which is never sent to the server; remove it");
  }

  std::string_view host;
  std::string_view port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) refuse(url, "has an IPv6 literal without its ']'");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') refuse(url, "has characters after the IPv6 literal's ']'");
      has_port = true;
      port_text = after.substr(1);
    }
    ep.host = lower(host);
    if (ep.host.empty()) refuse(url, "has an empty host");
    if (ep.host.find('%') != std::string::npos) {
      refuse(url, "has an IPv6 zone id ('%'), which is not supported");
    }
    if (!is_ipv6_literal(ep.host)) refuse(url, "has an invalid IPv6 literal '" + ep.host + "'");
    ep.host_is_ip = true;
  } else {
    auto colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      has_port = true;
      port_text = authority.substr(colon + 1);
    }
    ep.host = lower(host);
    if (ep.host.empty()) refuse(url, "has an empty host");
    for (char c : ep.host) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') {
        refuse(url, std::string("has a host with the character '") + c +
                        "'; a host is letters, digits, '-', '.' and '_'");
      }
    }
    ep.host_is_ip = is_ipv4_literal(ep.host);
  }

  if (!ep.tls() && !ep.is_loopback()) {
    refuse(url, "plain http goes to loopback hosts only (localhost, 127.0.0.0/8, ::1); '" +
                    ep.host +
                    "' is not one, so records and the api key would cross a network "
                    "unencrypted: use https");
  }

  if (has_port) {
    if (port_text.empty()) refuse(url, "has an empty port after ':'");
    if (port_text.size() > 5) refuse(url, "has a port out of range (1-65535)");
    unsigned long port = 0;
    for (char c : port_text) {
      if (c < '0' || c > '9') refuse(url, "has a port that is not a number");
      port = port * 10 + static_cast<unsigned long>(c - '0');
    }
    if (port == 0 || port > 65535) refuse(url, "has a port out of range (1-65535)");
    ep.port = static_cast<std::uint16_t>(port);
  }

  if (tail.empty()) {
    ep.target = "/";
  } else if (tail.front() == '?') {
    ep.target.assign(1, '/').append(tail);
  } else {
    ep.target = std::string(tail);
  }
  return ep;
}

}  // namespace flightlog::detail
