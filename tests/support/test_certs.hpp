// Certificates for the TLS tests, made at run time with OpenSSL (EC P-256, SHA-256), so
// nothing secret or expiring is checked in.
//
//   ca          the test CA; clients trust it through HttpClientConfig::ca_pem
//   trusted     signed by ca; SAN DNS:localhost, IP:127.0.0.1; valid now
//   wrong_host  signed by ca; SAN DNS:wrong.example only
//   expired     signed by ca; SAN as trusted; expired yesterday
//   untrusted   self-signed; SAN as trusted; no client trusts it
#pragma once

#include <filesystem>
#include <string>

namespace flightlog::test {

struct CertAndKey {
  std::string cert_pem;
  std::string key_pem;
};

struct TestCerts {
  std::string ca_pem;
  CertAndKey trusted;
  CertAndKey wrong_host;
  CertAndKey expired;
  CertAndKey untrusted;
};

// Made once per process (thread-safe) and kept. Aborts the test run if OpenSSL fails.
const TestCerts& test_certs();

// The test CA's certificate as a PEM file in `dir` (written on the first call), for
// Options::ca_file. Returns its path.
std::filesystem::path ca_file_in(const std::filesystem::path& dir);

}  // namespace flightlog::test
