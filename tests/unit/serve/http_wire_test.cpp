// The connection layer as a client sees it: limits, framing, timeouts, keep-alive, shutdown.

#include <algorithm>
#include <chrono>
#include <fstream>
#include <random>
#include <string_view>
#include <thread>

#include "server_fixture.hpp"

namespace sluice::testing {
namespace {

// The most the kernel lets a TCP socket's send buffer grow to (net.ipv4.tcp_wmem's maximum).
std::size_t largest_tcp_send_buffer() {
    std::ifstream f("/proc/sys/net/ipv4/tcp_wmem");
    std::size_t min = 0, initial = 0, max = 0;
    if (f >> min >> initial >> max) return max;
    return std::size_t{4} << 20;
}

// The receive buffer of clients that fetch large answers: small, and it does not grow.
constexpr int small_receive_buffer = 64 * 1024;
// What put_large_entry's body answers.
constexpr const char* large_target = "/v1/features/user_activity/big?fields=country";

// More than the server's send buffer and such a client's receive buffer can hold together:
// however the client reads, the server cannot write the answer at once and writes the rest
// asynchronously.
std::size_t large_answer_bytes() {
    return std::max<std::size_t>(std::size_t{8} << 20, 2 * largest_tcp_send_buffer() + (std::size_t{1} << 20));
}

// Letters and digits that never repeat at a short period, so a piece of the body lost, sent
// twice or sent out of place changes it. Nothing in it needs escaping in JSON.
std::string patterned_text(std::size_t size) {
    static constexpr std::string_view alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    std::minstd_rand gen(20240601);
    std::string text(size, ' ');
    for (char& ch : text) ch = alphabet[gen() % alphabet.size()];
    return text;
}

// Where a and b first differ; npos when they are equal.
std::size_t first_difference(std::string_view a, std::string_view b) {
    const std::size_t n = std::min(a.size(), b.size());
    const auto at = std::mismatch(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(n), b.begin()).first;
    const auto i = static_cast<std::size_t>(at - a.begin());
    if (i < n) return i;
    return a.size() == b.size() ? std::string_view::npos : n;
}

class HttpWireTest : public HttpServerFixture {
protected:
    /// Stores key "big" of user_activity with a country of `size` bytes and returns the exact
    /// body of GET /v1/features/user_activity/big?fields=country.
    std::string put_large_entry(std::size_t size) {
        const std::int64_t event_time = now_ms() - 1000;
        latest_entry e = make_full_entry("big", event_time, event_time + 5);
        std::string text = patterned_text(size);
        e.values[3] = value{text};  // country
        reader_.put(0, std::move(e));
        return R"({"feature_set":"user_activity","key":"big","status":"PRESENT","event_time":")" +
               format_rfc3339_ms(event_time) + R"(","ingested_at":")" + format_rfc3339_ms(event_time + 5) +
               R"(","values":{"country":")" + text + R"("}})";
    }
};

// http.write_timeout_ms (1000 in the fixture) bounds how long a client may take no bytes of an
// answer; a longer one gives a slow reader room to take a large answer.
class HttpWireSlowReaderTest : public HttpWireTest {
protected:
    void configure(config& c) override { c.http.write_timeout_ms = 5000; }
};

// The large answer arrived whole and exactly as rendered.
void expect_large_answer(const std::optional<wire_client::response>& res, const std::string& expected) {
    ASSERT_TRUE(res) << "the connection ended (or the read timed out) before the whole answer arrived";
    EXPECT_EQ(res->result_int(), 200);
    EXPECT_EQ((*res)[http::field::content_length], std::to_string(expected.size()));
    EXPECT_EQ(res->body().size(), expected.size());
    EXPECT_EQ(first_difference(res->body(), expected), std::string::npos) << "the body differs from the answer";
    EXPECT_TRUE(res->keep_alive());
}

// Asks for the large answer on `c` and reads it `chunk` bytes at a time with `pause` after each
// (`limit` at most); checks it arrived whole and returns how long the reading took.
std::chrono::steady_clock::duration get_large_answer_slowly(wire_client& c, const std::string& expected, std::size_t chunk,
                                                            std::chrono::milliseconds pause,
                                                            std::chrono::milliseconds limit) {
    c.send(http::verb::get, large_target);
    const auto start = std::chrono::steady_clock::now();
    auto res = c.read_slowly(chunk, pause, limit, 2 * expected.size());
    const auto took = std::chrono::steady_clock::now() - start;
    expect_large_answer(res, expected);
    return took;
}

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

// Four requests in one write, a POST with a body second. The body holds text that looks like
// a request line: it must be read as the lookup's body, not as a request of its own.
void send_pipeline_with_a_body(wire_client& c) {
    const std::string lookup =
        R"({"feature_set":"user_activity","keys":["42","GET /nope HTTP/1.1"],"fields":["clicks"]})";
    ASSERT_TRUE(c.send_raw(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        "POST /v1/features/lookup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
        std::to_string(lookup.size()) + "\r\n\r\n" + lookup +
        "GET /v1/features/user_activity/42?fields=country HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
}

void expect_pipeline_answers_in_order(wire_client& c) {
    auto health = c.read(2000ms);
    auto lookup = c.read(2000ms);
    auto one = c.read(2000ms);
    auto ready = c.read(2000ms);
    ASSERT_TRUE(health && lookup && one && ready);
    EXPECT_EQ(health->body(), R"({"status":"ok"})");

    EXPECT_EQ(lookup->result_int(), 200) << lookup->body();
    const auto results = nlohmann::json::parse(lookup->body(), nullptr, false)["results"];
    ASSERT_TRUE(results.is_array()) << lookup->body();
    ASSERT_EQ(results.size(), 2u) << lookup->body();
    EXPECT_EQ(results[0]["key"], "42");
    EXPECT_EQ(results[0]["values"], nlohmann::json::parse(R"({"clicks":42})"));
    EXPECT_EQ(results[1]["key"], "GET /nope HTTP/1.1");
    EXPECT_EQ(results[1]["status"], "NOT_FOUND");

    EXPECT_EQ(one->result_int(), 200) << one->body();
    EXPECT_EQ(nlohmann::json::parse(one->body(), nullptr, false)["values"], nlohmann::json::parse(R"({"country":"DE"})"))
        << one->body();

    EXPECT_EQ(ready->body(), R"({"status":"ready"})");
    EXPECT_FALSE(ready->keep_alive());
    EXPECT_TRUE(c.wait_for_close(3000ms).closed);
}

TEST_F(HttpWireTest, PipelinedRequestsWithABodyInTheMiddleAreAnsweredInOrder) {
    reader_.put(0, make_full_entry("42", now_ms() - 1000, now_ms()));
    wire_client c = connect();
    send_pipeline_with_a_body(c);
    expect_pipeline_answers_in_order(c);
}

TEST_F(HttpWireTest, PipelinedRequestsWithABodyAreAnsweredInOrderWhenLookupsAnswerLater) {
    // The lookups answer from another thread: the requests behind them wait in the buffer.
    reader_.put(0, make_full_entry("42", now_ms() - 1000, now_ms()));
    reader_.answer_from_thread(30ms);
    wire_client c = connect();
    send_pipeline_with_a_body(c);
    expect_pipeline_answers_in_order(c);
}

TEST_F(HttpWireSlowReaderTest, LargeAnswerReachesASlowReaderWholeAndTheConnectionServesAgain) {
    const std::string expected = put_large_entry(large_answer_bytes());
    wire_client c(server_->port(), small_receive_buffer);
    // 32 KiB at a time with a pause after each read: the server meets a full send buffer
    // hundreds of times. Well within the 5 s write deadline.
    const auto took = get_large_answer_slowly(c, expected, 32 * 1024, 1ms, 4000ms);
    EXPECT_GE(took, 100ms);  // the client did read slowly
    // The same connection then serves the next request.
    auto next = c.request(http::verb::get, "/healthz");
    ASSERT_TRUE(next);
    EXPECT_EQ(next->result_int(), 200);
    EXPECT_EQ(next->body(), R"({"status":"ok"})");
}

TEST_F(HttpWireSlowReaderTest, RequestPipelinedBehindALargeAnswerIsAnsweredAfterIt) {
    const std::string expected = put_large_entry(large_answer_bytes());
    wire_client c(server_->port(), small_receive_buffer);
    ASSERT_TRUE(c.send_raw("GET " + std::string(large_target) + " HTTP/1.1\r\nHost: x\r\n\r\n" +
                           "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    expect_large_answer(c.read_slowly(64 * 1024, 1ms, 4000ms, 2 * expected.size()), expected);
    auto next = c.read(2000ms);
    ASSERT_TRUE(next);
    EXPECT_EQ(next->body(), R"({"status":"ok"})");
    EXPECT_FALSE(next->keep_alive());
    EXPECT_TRUE(c.wait_for_close(3000ms).closed);
}

TEST_F(HttpWireTest, AReaderThatKeepsReadingGetsALargeAnswerWholePastTheWriteTimeout) {
    // The write deadline here is 1000 ms, and it runs from the last progress: a client that takes
    // the answer steadily for longer than that is not cut off.
    const std::string expected = put_large_entry(large_answer_bytes());
    wire_client c(server_->port(), small_receive_buffer);
    const auto took = get_large_answer_slowly(c, expected, 16 * 1024, 3ms, 8000ms);
    EXPECT_GT(took, 1000ms) << "the client read faster than the write deadline: this test proves nothing";
}

TEST_F(HttpWireTest, ClientThatNeverReadsALargeAnswerIsDisconnectedAfterTheWriteTimeout) {
    // The write deadline here is 1000 ms (http.write_timeout_ms of the fixture).
    const std::string expected = put_large_entry(large_answer_bytes());
    wire_client stuck(server_->port(), small_receive_buffer);
    stuck.send(http::verb::get, large_target);
    const auto start = std::chrono::steady_clock::now();

    // Meanwhile the server answers others, each at once.
    int answered = 0;
    while (std::chrono::steady_clock::now() - start < 1500ms) {
        const auto asked = std::chrono::steady_clock::now();
        wire_client other = connect();
        auto res = other.request(http::verb::get, "/healthz");
        ASSERT_TRUE(res) << "no answer to another client while one did not read";
        EXPECT_EQ(res->result_int(), 200);
        EXPECT_LT(std::chrono::steady_clock::now() - asked, 500ms);
        ++answered;
        std::this_thread::sleep_for(100ms);
    }
    EXPECT_GE(answered, 5);

    // Past the deadline the server has reset the connection: the client gets what was already in
    // its own receive buffer, then the end, and never the whole answer; what the server's kernel
    // still held for it (megabytes with a graceful close) is dropped.
    const auto closed = stuck.wait_for_close(3000ms);
    EXPECT_TRUE(closed.closed) << "the connection stayed open after " << closed.bytes << " bytes";
    EXPECT_GT(closed.bytes, 0u);
    EXPECT_LT(closed.bytes, std::size_t{1} << 20) << "the server's send queue was delivered after the timeout";
}

TEST_F(HttpWireSlowReaderTest, AClientThatNeverReadsIsCutOffAtItsOwnWriteTimeoutNotAtTheReadTimeout) {
    // read_timeout_ms is 300 here and write_timeout_ms 5000: the client that never reads keeps its
    // connection past the read timeout and past 1000 ms (where the write deadline used to be), and
    // loses it once 5 s pass without progress. The TCP state is watched without reading.
    const std::string expected = put_large_entry(large_answer_bytes());
    wire_client stuck(server_->port(), small_receive_buffer);
    stuck.send(http::verb::get, large_target);
    const auto start = std::chrono::steady_clock::now();
    const auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
    std::this_thread::sleep_for(2500ms);
    EXPECT_FALSE(stuck.ended_by_server()) << "cut off within " << seconds() << " s, before http.write_timeout_ms";
    while (!stuck.ended_by_server() && seconds() < 12) std::this_thread::sleep_for(50ms);
    const double at = seconds();
    EXPECT_TRUE(stuck.ended_by_server()) << "still open " << at << " s after the request";
    EXPECT_GE(at, 4.5);
    EXPECT_LT(stuck.wait_for_close(3000ms).bytes, expected.size()) << "the whole answer arrived though the client never read";
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
