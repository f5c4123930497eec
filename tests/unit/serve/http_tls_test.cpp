// http.tls: the same API over TLS, a handshake bounded by the read timeout, and a clear start-up
// failure for certificate or key files that cannot be used. Certificates are made with the
// openssl command line tool in a temporary directory.

#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <boost/asio/ssl.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "server_fixture.hpp"

namespace sluice::testing {
namespace {

namespace ssl = net::ssl;

// A directory with a self-signed certificate for 127.0.0.1 (cert.pem, key.pem) and a second,
// unrelated key (other_key.pem). Removed on destruction.
class tls_files {
public:
    tls_files() {
        char tmpl[] = "/tmp/sluice-tls-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
        dir_ = tmpl;
        ok_ = run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
                  "-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost "
                  "-keyout " + path("key.pem") + " -out " + path("cert.pem")) &&
              run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out " + path("other_key.pem"));
    }
    ~tls_files() {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    bool ok() const { return ok_; }
    std::string path(const std::string& name) const { return (dir_ / name).string(); }

private:
    static bool run(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }
    std::filesystem::path dir_;
    bool ok_ = false;
};

class HttpTlsTest : public HttpServerFixture {
protected:
    void SetUp() override {
        if (!files_.ok()) GTEST_SKIP() << "the openssl tool could not make a certificate";
        HttpServerFixture::SetUp();
    }
    void configure(config& cfg) override {
        cfg.http.tls.cert_file = files_.path("cert.pem");
        cfg.http.tls.key_file = files_.path("key.pem");
    }

    // A TLS client that trusts only the test certificate and checks the host name.
    struct tls_client {
        explicit tls_client(std::uint16_t port, const std::string& ca_file) : ctx(ssl::context::tls_client) {
            ctx.load_verify_file(ca_file);
            ctx.set_verify_mode(ssl::verify_peer);
            stream.emplace(ioc, ctx);
            beast::get_lowest_layer(*stream).connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
            stream->set_verify_callback(ssl::host_name_verification("127.0.0.1"));
        }
        beast::error_code handshake() {
            beast::error_code ec;
            stream->handshake(ssl::stream_base::client, ec);
            return ec;
        }
        std::optional<http::response<http::string_body>> get(const std::string& target) {
            http::request<http::string_body> req{http::verb::get, target, 11};
            req.set(http::field::host, "127.0.0.1");
            beast::error_code ec;
            http::write(*stream, req, ec);
            if (ec) return std::nullopt;
            http::response<http::string_body> res;
            http::read(*stream, buffer, res, ec);
            if (ec) return std::nullopt;
            return res;
        }
        net::io_context ioc;
        ssl::context ctx;
        std::optional<beast::ssl_stream<beast::tcp_stream>> stream;
        beast::flat_buffer buffer;
    };

    tls_files files_;
};

TEST_F(HttpTlsTest, ServesTheApiOverTls) {
    reader_.put(0, make_full_entry("42", now_ms(), now_ms()));
    tls_client c(server_->port(), files_.path("cert.pem"));
    ASSERT_FALSE(c.handshake()) << "handshake failed";
    auto res = c.get("/v1/features/user_activity/42");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 200);
    EXPECT_EQ(body_json(*res)["key"], "42");
    auto again = c.get("/healthz");  // keep-alive over the same TLS session
    ASSERT_TRUE(again);
    EXPECT_EQ(again->result_int(), 200);
}

TEST_F(HttpTlsTest, PlainHttpOnTheTlsPortGetsNoAnswerAndTheServerCarriesOn) {
    wire_client plain = connect();
    plain.send(http::verb::get, "/healthz");
    EXPECT_FALSE(plain.read(2000ms));

    tls_client c(server_->port(), files_.path("cert.pem"));
    ASSERT_FALSE(c.handshake());
    auto res = c.get("/healthz");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 200);
}

TEST_F(HttpTlsTest, AClientThatNeverHandshakesIsClosedAtTheReadTimeout) {
    wire_client silent = connect();
    const auto closed = silent.wait_for_close(3000ms);
    EXPECT_TRUE(closed.closed);
    EXPECT_GE(closed.after, 250ms);  // read_timeout is 300 ms
    EXPECT_LT(closed.after, 2000ms);
}

TEST_F(HttpTlsTest, ErrorsAreAnsweredOverTlsToo) {
    tls_client c(server_->port(), files_.path("cert.pem"));
    ASSERT_FALSE(c.handshake());
    auto res = c.get("/v1/features/user_activity/a%zz");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 400);
    EXPECT_EQ(error_code_of(*res), "bad_request");
}

class HttpTlsStartTest : public ::testing::Test {
protected:
    status start_with(const std::string& cert, const std::string& key) {
        cfg_ = make_test_config();
        cfg_.http.tls.cert_file = cert;
        cfg_.http.tls.key_file = key;
        ctx_.cfg = &cfg_;
        server_ = make_http_server(ctx_);
        return server_->start();
    }
    void TearDown() override {
        if (server_) server_->stop();
    }
    tls_files files_;
    config cfg_;
    serve_context ctx_;
    http_server_ptr server_;
};

TEST_F(HttpTlsStartTest, MissingCertificateFileFailsTheStartNamingIt) {
    if (!files_.ok()) GTEST_SKIP() << "the openssl tool could not make a certificate";
    const status st = start_with(files_.path("nope.pem"), files_.path("key.pem"));
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("http.tls.cert_file"), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("nope.pem"), std::string::npos) << st.message();
}

TEST_F(HttpTlsStartTest, KeyThatIsNotAKeyFailsTheStart) {
    if (!files_.ok()) GTEST_SKIP() << "the openssl tool could not make a certificate";
    const status st = start_with(files_.path("cert.pem"), files_.path("cert.pem"));
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("http.tls.key_file"), std::string::npos) << st.message();
}

TEST_F(HttpTlsStartTest, KeyOfAnotherCertificateFailsTheStart) {
    if (!files_.ok()) GTEST_SKIP() << "the openssl tool could not make a certificate";
    const status st = start_with(files_.path("cert.pem"), files_.path("other_key.pem"));
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("http.tls.key_file"), std::string::npos) << st.message();
}

TEST_F(HttpTlsStartTest, GarbageCertificateFailsTheStart) {
    if (!files_.ok()) GTEST_SKIP() << "the openssl tool could not make a certificate";
    std::ofstream(files_.path("garbage.pem")) << "-----BEGIN CERTIFICATE-----\nnot base64\n";
    const status st = start_with(files_.path("garbage.pem"), files_.path("key.pem"));
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("http.tls.cert_file"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace sluice::testing
