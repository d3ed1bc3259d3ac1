#include "common/tls_credentials.h"

#include <cstdio>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gauntlet {
namespace {

using ::testing::HasSubstr;

std::string WriteFile(const std::string& name, const std::string& contents) {
  const std::string path = std::string(::testing::TempDir()) + "/" + name;
  std::ofstream(path) << contents;
  return path;
}

// The PEM checks look at the headers only; the handshake itself is covered by
// //tests/e2e:tls_test with real certificates.
const char kCert[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
const char kKey[] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";

TEST(TlsCredentialsTest, EmptyPathsArePlaintext) {
  EXPECT_TRUE(MakeServerCredentials({}).ok());
  EXPECT_TRUE(MakeChannelCredentials({}).ok());
}

TEST(TlsCredentialsTest, ServerCertNeedsKey) {
  auto credentials = MakeServerCredentials({WriteFile("a.pem", kCert), "", ""});
  EXPECT_THAT(credentials.status().message(), HasSubstr("--tls_cert and --tls_key go together"));
}

TEST(TlsCredentialsTest, ClientCaNeedsServerCert) {
  auto credentials = MakeServerCredentials({"", "", WriteFile("ca.pem", kCert)});
  EXPECT_THAT(credentials.status().message(), HasSubstr("--tls_client_ca needs --tls_cert"));
}

TEST(TlsCredentialsTest, NamesTheFlagOfAnUnreadableFile) {
  auto credentials = MakeServerCredentials({"/nonexistent/cert.pem", WriteFile("k.pem", kKey), ""});
  EXPECT_THAT(credentials.status().message(),
              HasSubstr("--tls_cert: cannot read /nonexistent/cert.pem"));
}

TEST(TlsCredentialsTest, KeyGivenAsCertificateIsNamed) {
  const std::string key = WriteFile("key.pem", kKey);
  auto server = MakeServerCredentials({key, key, ""});
  EXPECT_THAT(server.status().message(),
              HasSubstr("--tls_cert: " + key + " holds no PEM CERTIFICATE"));
  auto client = MakeChannelCredentials({key, "", ""});
  EXPECT_THAT(client.status().message(),
              HasSubstr("--tls_ca: " + key + " holds no PEM CERTIFICATE"));
}

TEST(TlsCredentialsTest, CertificateGivenAsKeyIsNamed) {
  const std::string cert = WriteFile("cert.pem", kCert);
  auto server = MakeServerCredentials({cert, cert, ""});
  EXPECT_THAT(server.status().message(),
              HasSubstr("--tls_key: " + cert + " holds no PEM PRIVATE KEY"));
}

TEST(TlsCredentialsTest, ClientCertNeedsCaAndKey) {
  const std::string cert = WriteFile("c.pem", kCert);
  EXPECT_THAT(MakeChannelCredentials({"", cert, ""}).status().message(),
              HasSubstr("--tls_cert and --tls_key need --tls_ca"));
  EXPECT_THAT(MakeChannelCredentials({cert, cert, ""}).status().message(),
              HasSubstr("--tls_cert and --tls_key go together"));
}

TEST(TlsCredentialsTest, OversizedFileIsRefusedWithoutReadingItWhole) {
  const std::string big = WriteFile("big.pem", std::string(2 << 20, 'x'));
  EXPECT_THAT(MakeChannelCredentials({big, "", ""}).status().message(),
              HasSubstr("not a PEM file"));
}

}  // namespace
}  // namespace gauntlet
