// The upload URL, parsed and checked once when the uploader is configured.
//
// Only what an HTTP client needs is accepted: "https://host[:port][/path][?query]" and,
// where the caller allows it, "http://" to a loopback host (tests on one machine). Everything a URL
// could carry that would surprise later is refused up front with a message naming the problem:
// credentials (user:pass@ would end up in logs and error texts), fragments (never
// sent), spaces and control characters (header injection), non-ASCII bytes, bad ports.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace flightlog::detail {

struct ParsedEndpoint {
  std::string scheme;  // "https" or "http", lower case
  std::string host;    // lower case; an IPv6 literal without its brackets
  std::uint16_t port = 0;
  std::string target = "/";  // path and query, as written ("/" when the URL has no path)
  bool host_is_ip = false;   // an IPv4 or IPv6 literal: no DNS, no SNI, verified by IP SAN

  bool tls() const { return scheme == "https"; }
  // Whether the host is this machine by its name or address: "localhost", an IPv4
  // literal in 127.0.0.0/8, or the IPv6 loopback (::1, however written). ("127.x.example"
  // is a name, not loopback.)
  bool is_loopback() const;
  // The Host header: the host (IPv6 in brackets), with ":port" when not the default.
  std::string host_header() const;
  // "host:port" (IPv6 in brackets) for messages; never contains the path or query.
  std::string authority() const;
};

// Parses `url`. Throws flightlog::Error naming the problem for: an empty URL, no
// scheme, a scheme other than https/http, http when `allow_plain_http` is false or the
// host is not loopback (the api_key would cross a network in clear text), credentials (userinfo),
// an empty host, a bad IPv6 literal, a bad or zero port, a fragment, spaces, control characters or
// non-ASCII bytes. Messages quote the URL with any userinfo and query masked, so a secret placed
// there does not leak.
ParsedEndpoint parse_endpoint(std::string_view url, bool allow_plain_http);

}  // namespace flightlog::detail
