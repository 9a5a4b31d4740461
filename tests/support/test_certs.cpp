#include "support/test_certs.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>

namespace flightlog::test {

namespace {

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* x) const { X509_free(x); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "test_certs: OpenSSL failed: %s\n", what);
    std::abort();
  }
}

Key make_key() {
  Key key(EVP_EC_gen("P-256"));
  check(key != nullptr, "EVP_EC_gen");
  return key;
}

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value);
  check(ext != nullptr, value);
  check(X509_add_ext(cert, ext, -1) == 1, "X509_add_ext");
  X509_EXTENSION_free(ext);
}

struct Spec {
  const char* common_name;
  const char* san;  // nullptr for the CA
  long not_before_s;
  long not_after_s;
  bool is_ca;
};

// Issued by (issuer, issuer_key), or self-signed when issuer is null.
Cert make_cert(const Spec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
  static long serial = 1;
  Cert cert(X509_new());
  check(cert != nullptr, "X509_new");
  X509* x = cert.get();
  check(X509_set_version(x, 2) == 1, "X509_set_version");  // v3
  check(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++) == 1, "serial");
  check(X509_gmtime_adj(X509_getm_notBefore(x), spec.not_before_s) != nullptr, "notBefore");
  check(X509_gmtime_adj(X509_getm_notAfter(x), spec.not_after_s) != nullptr, "notAfter");
  check(X509_set_pubkey(x, key) == 1, "X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(x);
  check(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("flightlog tests"), -1,
                                   -1, 0) == 1,
        "O");
  check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(spec.common_name), -1, -1,
                                   0) == 1,
        "CN");
  X509* signer = issuer != nullptr ? issuer : x;
  check(X509_set_issuer_name(x, X509_get_subject_name(signer)) == 1, "issuer");
  add_ext(x, signer, NID_subject_key_identifier, "hash");
  if (issuer != nullptr) add_ext(x, signer, NID_authority_key_identifier, "keyid:always");
  if (spec.is_ca) {
    add_ext(x, signer, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(x, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(x, signer, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(x, signer, NID_key_usage, "critical,digitalSignature");
    add_ext(x, signer, NID_ext_key_usage, "serverAuth");
    add_ext(x, signer, NID_subject_alt_name, spec.san);
  }
  check(X509_sign(x, issuer_key != nullptr ? issuer_key : key, EVP_sha256()) > 0, "X509_sign");
  return cert;
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string cert_pem(X509* x) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  check(PEM_write_bio_X509(bio.get(), x) == 1, "PEM_write_bio_X509");
  return bio_text(bio.get());
}

std::string key_pem(EVP_PKEY* k) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  check(PEM_write_bio_PrivateKey(bio.get(), k, nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "PEM_write_bio_PrivateKey");
  return bio_text(bio.get());
}

constexpr long kDay = 24 * 3600;
constexpr const char* kGoodSan = "DNS:localhost,IP:127.0.0.1";

TestCerts generate() {
  TestCerts out;
  Key ca_key = make_key();
  Cert ca = make_cert({"flightlog test CA", nullptr, -kDay, 30 * kDay, true}, ca_key.get(), nullptr,
                      nullptr);
  out.ca_pem = cert_pem(ca.get());

  auto issue = [&](const Spec& spec) {
    Key key = make_key();
    Cert cert = make_cert(spec, key.get(), ca.get(), ca_key.get());
    return CertAndKey{cert_pem(cert.get()), key_pem(key.get())};
  };
  out.trusted = issue({"localhost", kGoodSan, -kDay, 30 * kDay, false});
  out.wrong_host = issue({"wrong.example", "DNS:wrong.example", -kDay, 30 * kDay, false});
  out.expired = issue({"localhost", kGoodSan, -3 * kDay, -kDay, false});

  Key self_key = make_key();
  Cert self =
      make_cert({"localhost", kGoodSan, -kDay, 30 * kDay, false}, self_key.get(), nullptr, nullptr);
  out.untrusted = {cert_pem(self.get()), key_pem(self_key.get())};
  return out;
}

}  // namespace

const TestCerts& test_certs() {
  static const TestCerts certs = generate();
  return certs;
}

std::filesystem::path ca_file_in(const std::filesystem::path& dir) {
  const auto path = dir / "ca.pem";
  if (!std::filesystem::exists(path)) std::ofstream(path) << test_certs().ca_pem;
  return path;
}

}  // namespace flightlog::test
