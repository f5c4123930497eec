// The connection layer as a client sees it: limits, framing, timeouts, keep-alive, shutdown.

#include <chrono>
#include <thread>

#include "server_fixture.hpp"

namespace sluice::testing {
namespace {

class HttpWireTest : public HttpServerFixture {};

// The server answered with this error and then closed the connection.
void expect_error_then_close(wire_client& c, int status, const std::string& code) {
    auto res = c.read();
    ASSERT_TRUE(res) << "no response before the connection closed";
    EXPECT_EQ(res->result_int(), status);
    EXPECT_EQ((*res)[http::field::content_type], "application/json");
    const auto body = nlohmann::json::parse(res->body(), nullptr, false);
    ASSERT_TRUE(body.is_object()) << res->body();
    EXPECT_EQ(body["error"]["code"], code) << res->body();
    EXPECT_TRUE(body["error"]["message"].is_string());
    EXPECT_FALSE(res->keep_alive());
    const auto closed = c.wait_for_close(3000ms);
    EXPECT_TRUE(closed.closed);
    EXPECT_EQ(closed.bytes, 0u);
}

TEST_F(HttpWireTest, KeepAliveServesSeveralRequestsOnOneConnection) {
    wire_client c = connect();
    for (int i = 0; i < 3; ++i) {
        auto res = c.request(http::verb::get, "/healthz");
        ASSERT_TRUE(res);
        EXPECT_EQ(res->result_int(), 200);
        EXPECT_TRUE(res->keep_alive());
    }
}

TEST_F(HttpWireTest, PipelinedRequestsAreAnsweredInOrder) {
    wire_client c = connect();
    c.send_raw(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    auto a = c.read();
    auto b = c.read();
    auto d = c.read();
    ASSERT_TRUE(a && b && d);
    EXPECT_EQ(a->body(), R"({"status":"ok"})");
    EXPECT_EQ(b->result_int(), 404);
    EXPECT_EQ(d->body(), R"({"status":"ready"})");
    EXPECT_FALSE(d->keep_alive());
    EXPECT_TRUE(c.wait_for_close(3000ms).closed);
}

TEST_F(HttpWireTest, ConnectionCloseIsHonoured) {
    wire_client c = connect();
    auto res = c.request(http::verb::get, "/healthz", {{"Connection", "close"}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 200);
    EXPECT_FALSE(res->keep_alive());
    EXPECT_TRUE(c.wait_for_close(3000ms).closed);
}

TEST_F(HttpWireTest, BodyOverTheLimitIs413) {
    wire_client c = connect();
    c.send_raw("POST /v1/features/user_activity/42 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Content-Length: 2000\r\n\r\n" +
               std::string(2000, 'a'));
    expect_error_then_close(c, 413, "payload_too_large");
}

TEST_F(HttpWireTest, ChunkedBodyOverTheLimitIs413) {
    wire_client c = connect();
    c.send_raw("POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "200\r\n" + std::string(512, 'a') + "\r\n"
               "200\r\n" + std::string(512, 'b') + "\r\n"
               "200\r\n" + std::string(512, 'c') + "\r\n0\r\n\r\n");
    expect_error_then_close(c, 413, "payload_too_large");
}

TEST_F(HttpWireTest, ChunkedBodyWithinTheLimitIsAccepted) {
    wire_client c = connect();
    c.send_raw("GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n0\r\n\r\n");
    auto res = c.read();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 200);
}

TEST_F(HttpWireTest, EndlessChunkExtensionIsRefused) {
    // Beast 1.74 does not bound chunk extensions by the body limit; the server must.
    wire_client c = connect();
    c.send_raw("GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=" +
               std::string(200000, 'x'));
    auto res = c.read();
    ASSERT_TRUE(res);
    EXPECT_GE(res->result_int(), 400);
    EXPECT_LT(res->result_int(), 500);
    EXPECT_TRUE(c.wait_for_close(3000ms).closed);
}

TEST_F(HttpWireTest, HeaderOverTheLimitIs431) {
    wire_client c = connect();
    c.send_raw("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'h') + "\r\n\r\n");
    expect_error_then_close(c, 431, "headers_too_large");
}

TEST_F(HttpWireTest, ContentLengthWithTransferEncodingIs400) {
    wire_client c = connect();
    c.send_raw("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
               "0\r\n\r\n");
    expect_error_then_close(c, 400, "bad_request");

    wire_client d = connect();
    d.send_raw("POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
               "0\r\n\r\n");
    expect_error_then_close(d, 400, "bad_request");
}

TEST_F(HttpWireTest, TransferEncodingOtherThanChunkedIs400) {
    wire_client c = connect();
    c.send_raw("POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n");
    expect_error_then_close(c, 400, "bad_request");

    wire_client d = connect();
    d.send_raw("POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n");
    expect_error_then_close(d, 400, "bad_request");
}

TEST_F(HttpWireTest, MalformedRequestIs400) {
    wire_client c = connect();
    c.send_raw("this is not http\r\n\r\n");
    expect_error_then_close(c, 400, "bad_request");
}

TEST_F(HttpWireTest, BadPercentEscapeInPathIs400) {
    wire_client c = connect();
    auto res = c.request(http::verb::get, "/v1/features/user_activity/a%zz");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 400);
    EXPECT_EQ(error_code_of(*res), "bad_request");
}

TEST_F(HttpWireTest, HalfARequestThenSilenceIsDisconnectedAfterReadTimeout) {
    wire_client c = connect();
    c.send_raw("GET /healthz HTTP/1.1\r\nHost: x\r\n");  // no blank line: the header never ends
    const auto closed = c.wait_for_close(3000ms);
    EXPECT_TRUE(closed.closed);
    EXPECT_GE(closed.after, 250ms);  // read_timeout is 300 ms
    EXPECT_LT(closed.after, 2000ms);
    EXPECT_EQ(closed.bytes, 0u);
}

TEST_F(HttpWireTest, TricklingClientIsCutOffAtReadTimeout) {
    // Each byte arrives well within read_timeout (300 ms); the request as a whole does not.
    wire_client c = connect();
    const auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(c.send_raw("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "));
    bool refused = false;
    while (std::chrono::steady_clock::now() - start < 2000ms) {
        if (!c.send_raw("x")) {  // fails once the server has closed the connection
            refused = true;
            break;
        }
        std::this_thread::sleep_for(50ms);
    }
    const auto cut_after = std::chrono::steady_clock::now() - start;
    EXPECT_TRUE(refused);
    EXPECT_GE(cut_after, 250ms);
    EXPECT_LT(cut_after, 1000ms);
}

TEST_F(HttpWireTest, IdleKeepAliveConnectionIsClosedAfterIdleTimeout) {
    wire_client c = connect();
    auto res = c.request(http::verb::get, "/healthz");
    ASSERT_TRUE(res);
    const auto closed = c.wait_for_close(3000ms);
    EXPECT_TRUE(closed.closed);
    EXPECT_GE(closed.after, 500ms);  // idle_timeout is 600 ms, longer than read_timeout
    EXPECT_EQ(closed.bytes, 0u);
}

TEST_F(HttpWireTest, ExpectContinueGets100BeforeTheBody) {
    wire_client c = connect();
    c.send_raw("GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    auto res = c.read(2000ms);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 100);
    c.send_raw("hello");
    auto final_res = c.read();
    ASSERT_TRUE(final_res);
    EXPECT_EQ(final_res->result_int(), 200);
}

TEST_F(HttpWireTest, StopClosesOpenConnections) {
    wire_client c = connect();
    auto res = c.request(http::verb::get, "/healthz");
    ASSERT_TRUE(res);
    server_->stop();
    const auto closed = c.wait_for_close(2000ms);
    EXPECT_TRUE(closed.closed);
    EXPECT_LT(closed.after, 500ms);
}

TEST_F(HttpWireTest, StopWhileALookupIsPendingIsSafe) {
    reader_.answer_from_thread(300ms);
    wire_client c = connect();
    c.send(http::verb::get, "/v1/features/user_activity/42");
    std::this_thread::sleep_for(50ms);
    server_->stop();
    server_.reset();  // the answer arrives after the server is gone
    const auto closed = c.wait_for_close(2000ms);
    EXPECT_TRUE(closed.closed);
    std::this_thread::sleep_for(400ms);
}

class HttpListenTest : public ::testing::Test {};

TEST_F(HttpListenTest, BadListenAddressFailsToStart) {
    config cfg = make_test_config();
    cfg.http.listen = "127.0.0.1:http";
    serve_context ctx;
    ctx.cfg = &cfg;
    auto server = make_http_server(ctx);
    const status st = server->start();
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find("127.0.0.1:http"), std::string::npos) << st.message();
}

TEST_F(HttpListenTest, PortInUseFailsToStart) {
    config cfg = make_test_config();
    serve_context ctx;
    ctx.cfg = &cfg;
    auto first = make_http_server(ctx);
    ASSERT_TRUE(first->start().ok());
    config cfg2 = make_test_config();
    cfg2.http.listen = "127.0.0.1:" + std::to_string(first->port());
    serve_context ctx2;
    ctx2.cfg = &cfg2;
    auto second = make_http_server(ctx2);
    const status st = second->start();
    EXPECT_FALSE(st.ok());
    first->stop();
}

}  // namespace
}  // namespace sluice::testing
