// The HTTP layer under abuse and load, as a client sees it: the connection cap, per-client rate
// limits with Retry-After, request smuggling shapes, chunk extension and trailer bombs, and the
// request metrics each answered request produces.

#include <chrono>
#include <mutex>
#include <thread>
#include <tuple>

#include "server_fixture.hpp"

namespace sluice::testing {
namespace {

// Records every observe_request call.
class recording_telemetry final : public telemetry {
public:
    struct observation {
        std::string route;
        std::string method;
        int status = 0;
        double seconds = 0;
    };
    feature_set_figures figures(std::uint32_t) const override { return {}; }
    void observe_request(std::string_view route, std::string_view method, int status, double seconds) override {
        std::lock_guard lock(mutex_);
        seen_.push_back({std::string(route), std::string(method), status, seconds});
    }
    std::string render_metrics() override { return {}; }
    std::vector<observation> seen() const {
        std::lock_guard lock(mutex_);
        return seen_;
    }

private:
    mutable std::mutex mutex_;
    std::vector<observation> seen_;
};

// The server answered with this status and closed the connection.
void expect_refused(wire_client& c, int status) {
    auto res = c.read();
    ASSERT_TRUE(res) << "no response before the connection closed";
    EXPECT_EQ(res->result_int(), status) << res->body();
    EXPECT_FALSE(res->keep_alive());
    EXPECT_TRUE(c.wait_for_close(3000ms).closed);
}

class HttpHardeningTest : public HttpServerFixture {
protected:
    void SetUp() override {
        ctx_.metrics = &telemetry_;
        HttpServerFixture::SetUp();
        reader_.put(0, make_full_entry("42", now_ms(), now_ms()));
    }
    // The server still serves a normal request on a fresh connection.
    void expect_still_serving() {
        auto res = get("/v1/features/user_activity/42");
        ASSERT_TRUE(res);
        EXPECT_EQ(res->result_int(), 200);
    }
    recording_telemetry telemetry_;
};

// --- smuggling shapes and framing bombs ------------------------------------------------------

TEST_F(HttpHardeningTest, TwoContentLengthsAre400) {
    wire_client c = connect();
    c.send_raw("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!");
    expect_refused(c, 400);
    wire_client d = connect();
    d.send_raw("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello");
    expect_refused(d, 400);
    wire_client e = connect();
    e.send_raw("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello");
    expect_refused(e, 400);
    expect_still_serving();
}

TEST_F(HttpHardeningTest, TransferEncodingShapesOtherThanOneChunkedAre400) {
    for (const std::string te_lines : {"Transfer-Encoding: chunked, chunked\r\n",
                                       "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                                       "Transfer-Encoding: identity\r\n", "Transfer-Encoding: xchunked\r\n",
                                       "Transfer-Encoding: chunked;q=1\r\n"}) {
        wire_client c = connect();
        c.send_raw("POST /healthz HTTP/1.1\r\nHost: x\r\n" + te_lines + "\r\n0\r\n\r\n");
        auto res = c.read();
        ASSERT_TRUE(res) << te_lines;
        EXPECT_EQ(res->result_int(), 400) << te_lines;
        EXPECT_EQ(error_code_of(*res), "bad_request") << te_lines;
        EXPECT_TRUE(c.wait_for_close(3000ms).closed) << te_lines;
    }
    expect_still_serving();
}

TEST_F(HttpHardeningTest, SpaceBeforeTheColonOfAFieldIs400) {
    wire_client c = connect();
    c.send_raw("POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc");
    expect_refused(c, 400);
}

TEST_F(HttpHardeningTest, ChunkSizeOverflowIsRefused) {
    wire_client c = connect();
    c.send_raw("POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "fffffffffffffffffffff\r\nabc\r\n");
    auto res = c.read();
    ASSERT_TRUE(res);
    EXPECT_TRUE(res->result_int() == 400 || res->result_int() == 413) << res->result_int();
    EXPECT_TRUE(c.wait_for_close(3000ms).closed);
    expect_still_serving();
}

TEST_F(HttpHardeningTest, ManyChunksWithLongExtensionsAreCutOff) {
    // Each chunk is small and each extension fits the buffer, but the framing as a whole is far
    // larger than the body limit (1 KiB here): the server stops reading and answers 413.
    wire_client c = connect();
    c.send_raw("POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    const std::string chunk = "1;ext=" + std::string(1000, 'e') + "\r\nx\r\n";
    std::string many;
    for (int i = 0; i < 200; ++i) many += chunk;
    c.send_raw(many);  // ~200 KB, the server gives up long before the end
    auto res = c.read();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 413);
    EXPECT_TRUE(c.wait_for_close(3000ms).closed);
    expect_still_serving();
}

TEST_F(HttpHardeningTest, TrailerBombIsRefused) {
    wire_client c = connect();
    c.send_raw("POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n");
    std::string trailers;
    for (int i = 0; i < 20000; ++i) trailers += "X-T" + std::to_string(i) + ": aaaaaaaa\r\n";
    c.send_raw(trailers);  // ~400 KB of trailer fields, never ended by an empty line
    auto res = c.read();
    ASSERT_TRUE(res);
    EXPECT_GE(res->result_int(), 400);
    EXPECT_LT(res->result_int(), 500);
    EXPECT_TRUE(c.wait_for_close(3000ms).closed);
    expect_still_serving();
}

TEST_F(HttpHardeningTest, OneLongTrailerLineIsRefused) {
    wire_client c = connect();
    c.send_raw("POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Long: " +
               std::string(300000, 't'));
    auto res = c.read();
    ASSERT_TRUE(res);
    EXPECT_GE(res->result_int(), 400);
    EXPECT_LT(res->result_int(), 500);
    expect_still_serving();
}

TEST_F(HttpHardeningTest, WrongMethodIs405WithAllowAndUnknownPathIs404) {
    wire_client c = connect();
    auto res = c.request(http::verb::delete_, "/v1/features/user_activity/42");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 405);
    EXPECT_EQ((*res)[http::field::allow], "GET");
    EXPECT_EQ(error_code_of(*res), "method_not_allowed");
    res = c.request(http::verb::get, "/v1/nothing/here");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 404);
    EXPECT_EQ(error_code_of(*res), "not_found");
}

// --- request metrics -------------------------------------------------------------------------

TEST_F(HttpHardeningTest, EachAnsweredRequestIsObservedOnceWithItsRoutePattern) {
    wire_client c = connect();
    ASSERT_TRUE(c.request(http::verb::get, "/v1/features/user_activity/42"));
    ASSERT_TRUE(c.request(http::verb::get, "/v1/features/user_activity/missing"));
    ASSERT_TRUE(c.request(http::verb::get, "/healthz"));
    ASSERT_TRUE(c.request(http::verb::get, "/no/such/thing"));
    ASSERT_TRUE(c.request(http::verb::post, "/healthz"));
    const auto seen = telemetry_.seen();
    ASSERT_EQ(seen.size(), 5u);
    using row = std::tuple<std::string, std::string, int>;
    auto at = [&](std::size_t i) { return row{seen[i].route, seen[i].method, seen[i].status}; };
    EXPECT_EQ(at(0), (row{"/v1/features/{set}/{key}", "GET", 200}));
    EXPECT_EQ(at(1), (row{"/v1/features/{set}/{key}", "GET", 404}));
    EXPECT_EQ(at(2), (row{"/healthz", "GET", 200}));
    EXPECT_EQ(at(3), (row{"unmatched", "GET", 404}));
    EXPECT_EQ(at(4), (row{"unmatched", "POST", 405}));
    for (const auto& o : seen) {
        EXPECT_GE(o.seconds, 0.0);
        EXPECT_LT(o.seconds, 60.0);
    }
}

TEST_F(HttpHardeningTest, AnswersFromAnotherThreadAreObservedOnce) {
    reader_.answer_from_thread(50ms);
    auto res = get("/v1/features/user_activity/42");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 200);
    const auto seen = telemetry_.seen();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].route, "/v1/features/{set}/{key}");
    EXPECT_EQ(seen[0].status, 200);
    EXPECT_GE(seen[0].seconds, 0.04);  // the lookup's delay is part of the answer's time
}

TEST_F(HttpHardeningTest, RefusedRequestsAreObservedAsUnmatchedAndUnknownMethodsAsOther) {
    wire_client a = connect();
    a.send_raw("this is not http\r\n\r\n");
    ASSERT_TRUE(a.read());
    wire_client b = connect();
    b.send_raw("BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    auto brewed = b.read();
    ASSERT_TRUE(brewed);
    wire_client c = connect();
    c.send_raw("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'h') + "\r\n\r\n");
    ASSERT_TRUE(c.read());

    const auto seen = telemetry_.seen();
    ASSERT_EQ(seen.size(), 3u);
    EXPECT_EQ(seen[0].route, "unmatched");
    EXPECT_EQ(seen[0].status, 400);
    EXPECT_EQ(seen[1].route, "unmatched");
    EXPECT_EQ(seen[1].method, "other");
    EXPECT_EQ(seen[1].status, brewed->result_int());
    EXPECT_EQ(seen[2].route, "unmatched");
    EXPECT_EQ(seen[2].status, 431);
}

TEST_F(HttpHardeningTest, ConnectionsThatSendNothingAreNotObserved) {
    {
        wire_client c = connect();
        c.send_raw("GET /healthz HTTP/1.1\r\nHost: x\r\n");  // never finished
        EXPECT_TRUE(c.wait_for_close(3000ms).closed);
    }
    EXPECT_TRUE(telemetry_.seen().empty());
}

// --- connection cap --------------------------------------------------------------------------

class HttpConnectionCapTest : public HttpHardeningTest {
protected:
    void configure(config& cfg) override { cfg.http.max_connections = 2; }
};

TEST_F(HttpConnectionCapTest, ConnectionsBeyondTheCapAreClosedAtOnceAndServedAgainLater) {
    auto a = std::make_unique<wire_client>(server_->port());
    wire_client b = connect();
    ASSERT_TRUE(a->request(http::verb::get, "/healthz"));
    ASSERT_TRUE(b.request(http::verb::get, "/healthz"));

    wire_client over = connect();  // the kernel accepts it; the server closes it unread
    over.send(http::verb::get, "/healthz");
    const auto closed = over.wait_for_close(3000ms);
    EXPECT_TRUE(closed.closed);
    EXPECT_EQ(closed.bytes, 0u);
    EXPECT_LT(closed.after, 1000ms);

    // The open connections are unaffected.
    auto still = b.request(http::verb::get, "/healthz");
    ASSERT_TRUE(still);
    EXPECT_EQ(still->result_int(), 200);

    // Once one closes, a new connection is served again.
    a.reset();
    std::optional<wire_client::response> res;
    const auto deadline = std::chrono::steady_clock::now() + 3s;
    while (!res && std::chrono::steady_clock::now() < deadline) {
        wire_client again = connect();
        res = again.request(http::verb::get, "/healthz");
        if (!res) std::this_thread::sleep_for(20ms);
    }
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 200);
}

// --- rate limit ------------------------------------------------------------------------------

class HttpRateLimitTest : public HttpHardeningTest {
protected:
    void configure(config& cfg) override {
        cfg.http.rate_limit.requests_per_sec = 0.5;  // a token every 2 s: no refill during the test
        cfg.http.rate_limit.burst = 3;
    }
};

TEST_F(HttpRateLimitTest, OverTheLimitIs429WithRetryAfter) {
    wire_client c = connect();
    for (int i = 0; i < 3; ++i) {
        auto res = c.request(http::verb::get, "/v1/features/user_activity/42");
        ASSERT_TRUE(res);
        EXPECT_EQ(res->result_int(), 200) << "request " << i;
    }
    auto res = c.request(http::verb::get, "/v1/features/user_activity/42");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 429);
    EXPECT_EQ(error_code_of(*res), "rate_limited");
    const std::string retry_after((*res)[http::field::retry_after]);
    ASSERT_FALSE(retry_after.empty());
    ASSERT_EQ(retry_after.find_first_not_of("0123456789"), std::string::npos) << retry_after;
    EXPECT_GE(std::stoi(retry_after), 1);
    EXPECT_LE(std::stoi(retry_after), 2);
    EXPECT_TRUE(res->keep_alive());  // a 429 does not cost the client its connection
    // Unknown paths count too: they are not a way around the limit.
    res = c.request(http::verb::get, "/no/such/thing");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 429);
    EXPECT_EQ(reader_.calls(), 3);
}

TEST_F(HttpRateLimitTest, HealthProbesAreNeverLimited) {
    wire_client c = connect();
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(c.request(http::verb::get, "/v1/features/user_activity/42"));
    for (int i = 0; i < 20; ++i) {
        auto h = c.request(http::verb::get, i % 2 ? "/healthz" : "/readyz");
        ASSERT_TRUE(h);
        EXPECT_EQ(h->result_int(), 200) << i;
    }
}

class HttpRateLimitAuthTest : public HttpHardeningTest {
protected:
    void configure(config& cfg) override {
        cfg.http.rate_limit.requests_per_sec = 0.5;
        cfg.http.rate_limit.burst = 2;
        cfg.http.api_keys = {{"reader-a", read_key_sha256, {"read"}}, {"writer-b", write_key_sha256, {"read", "write"}}};
    }
};

TEST_F(HttpRateLimitAuthTest, EachApiKeyHasItsOwnBucket) {
    const std::vector<std::pair<std::string, std::string>> key_a{{"Authorization", "Bearer read-key"}};
    const std::vector<std::pair<std::string, std::string>> key_b{{"X-API-Key", "write-key"}};
    wire_client c = connect();  // one address, two clients
    for (int i = 0; i < 2; ++i) EXPECT_EQ(c.request(http::verb::get, "/v1/features/user_activity/42", key_a)->result_int(), 200);
    EXPECT_EQ(c.request(http::verb::get, "/v1/features/user_activity/42", key_a)->result_int(), 429);
    for (int i = 0; i < 2; ++i) EXPECT_EQ(c.request(http::verb::get, "/v1/features/user_activity/42", key_b)->result_int(), 200);
    EXPECT_EQ(c.request(http::verb::get, "/v1/features/user_activity/42", key_b)->result_int(), 429);
    // Requests without a valid key are refused as such, not counted against anyone.
    EXPECT_EQ(c.request(http::verb::get, "/v1/features/user_activity/42")->result_int(), 401);
}

class HttpAuthHardeningTest : public HttpHardeningTest {
protected:
    void configure(config& cfg) override {
        cfg.http.api_keys = {{"reader", read_key_sha256, {"read"}}, {"writer", write_key_sha256, {"write"}}};
    }
    int status_with(const std::vector<std::pair<std::string, std::string>>& headers, std::string_view target) {
        // wire_client::send sets each header once; repeated fields are written by hand.
        std::string raw = "GET " + std::string(target) + " HTTP/1.1\r\nHost: x\r\n";
        for (const auto& [name, value] : headers) raw += name + ": " + value + "\r\n";
        wire_client c = connect();
        c.send_raw(raw + "\r\n");
        auto res = c.read();
        return res ? res->result_int() : 0;
    }
};

TEST_F(HttpAuthHardeningTest, ARepeatedCredentialFieldIs401EvenWhenOneIsRight) {
    const char* target = "/v1/features/user_activity/42";
    EXPECT_EQ(status_with({{"Authorization", "Bearer read-key"}}, target), 200);
    EXPECT_EQ(status_with({{"Authorization", "Bearer nope"}, {"Authorization", "Bearer read-key"}}, target), 401);
    EXPECT_EQ(status_with({{"Authorization", "Bearer read-key"}, {"Authorization", "Bearer nope"}}, target), 401);
    EXPECT_EQ(status_with({{"Authorization", "Bearer read-key"}, {"Authorization", "Bearer read-key"}}, target), 401);
    EXPECT_EQ(status_with({{"X-API-Key", "nope"}, {"X-API-Key", "read-key"}}, target), 401);
    // Another scheme in Authorization does not hide an X-API-Key.
    EXPECT_EQ(status_with({{"Authorization", "Basic eDp5"}, {"X-API-Key", "read-key"}}, target), 200);
}

TEST_F(HttpAuthHardeningTest, KeysElsewhereThanTheHeadersAreIgnored) {
    EXPECT_EQ(status_with({}, "/v1/features/user_activity/42?api_key=read-key"), 401);
    EXPECT_EQ(status_with({{"Cookie", "api_key=read-key"}}, "/v1/features/user_activity/42"), 401);
    EXPECT_EQ(status_with({{"Authorization", std::string("Bearer ") + read_key_sha256}}, "/v1/features/user_activity/42"),
              401);
    EXPECT_EQ(status_with({{"Authorization", "Bearer write-key"}}, "/v1/features/user_activity/42"), 403);
}

TEST_F(HttpAuthHardeningTest, FailedAttemptsAreObservedWithTheRoute) {
    status_with({}, "/v1/features/user_activity/42");
    status_with({}, "/no/such/thing");
    const auto seen = telemetry_.seen();
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[0].route, "/v1/features/{set}/{key}");
    EXPECT_EQ(seen[0].status, 401);
    EXPECT_EQ(seen[1].route, "unmatched");
    EXPECT_EQ(seen[1].status, 401);
}

}  // namespace
}  // namespace sluice::testing
