// GET /v1/features/{set}/{key}, the health routes and API keys, as a client sees them on the wire.

#include <chrono>

#include "server_fixture.hpp"

namespace sluice::testing {
namespace {

using json = nlohmann::json;

class HttpFeaturesTest : public HttpServerFixture {};

TEST_F(HttpFeaturesTest, ReturnsLatestRecordRenderedByFieldType) {
    const std::int64_t event_time = now_ms() - 1000;
    const std::int64_t ingested_at = event_time + 250;
    reader_.put(0, make_full_entry("42", event_time, ingested_at));

    auto res = get("/v1/features/user_activity/42");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 200);
    EXPECT_EQ((*res)[http::field::content_type], "application/json");
    EXPECT_EQ((*res)[http::field::server], "sluice");
    // Members come in the documented order.
    EXPECT_EQ(res->body().rfind(R"({"feature_set":"user_activity","key":"42","status":"PRESENT",)", 0), 0u)
        << res->body();

    const json body = body_json(*res);
    EXPECT_EQ(body["event_time"], format_rfc3339_ms(event_time));
    EXPECT_EQ(body["ingested_at"], format_rfc3339_ms(ingested_at));
    const json& v = body["values"];
    ASSERT_TRUE(v.is_object());
    EXPECT_EQ(v.size(), 9u);
    EXPECT_TRUE(v["clicks"].is_number_integer());
    EXPECT_EQ(v["clicks"], 42);
    EXPECT_TRUE(v["spend"].is_number_float());
    EXPECT_EQ(v["spend"], 12.5);
    EXPECT_EQ(v["active"], true);
    EXPECT_EQ(v["country"], "DE");
    EXPECT_EQ(v["last_seen"], "2025-11-21T10:00:00.123Z");
    EXPECT_EQ(v["profile"], json::parse(R"({"tier":"gold","tags":[1,2]})"));
    EXPECT_EQ(v["raw"], "not json {");  // a json field that does not parse is served as a string
    EXPECT_TRUE(v["nickname"].is_null());
    EXPECT_TRUE(v["ratio"].is_null());  // NaN never reaches the wire
    EXPECT_EQ(res->body().find("NaN"), std::string::npos);
}

TEST_F(HttpFeaturesTest, FieldsQueryRestrictsValuesInDeclaredOrder) {
    reader_.put(0, make_full_entry("42", now_ms(), now_ms()));
    auto res = get("/v1/features/user_activity/42?fields=spend,clicks,last_seen");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->result_int(), 200);
    EXPECT_NE(res->body().find(R"("values":{"clicks":42,"spend":12.5,"last_seen":"2025-11-21T10:00:00.123Z"}})"),
              std::string::npos)
        << res->body();
}

TEST_F(HttpFeaturesTest, FieldsQueryIsUrlDecoded) {
    reader_.put(0, make_full_entry("42", now_ms(), now_ms()));
    auto res = get("/v1/features/user_activity/42?fields=country%2Cactive");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->result_int(), 200);
    EXPECT_EQ(body_json(*res)["values"], json::parse(R"({"active":true,"country":"DE"})"));
}

TEST_F(HttpFeaturesTest, UnknownFieldIs400BeforeAnyLookup) {
    reader_.put(0, make_full_entry("42", now_ms(), now_ms()));
    auto res = get("/v1/features/user_activity/42?fields=clicks,nope");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 400);
    EXPECT_EQ(error_code_of(*res), "unknown_field");
    EXPECT_NE(body_json(*res)["error"]["message"].get<std::string>().find("nope"), std::string::npos);
    EXPECT_EQ(reader_.calls(), 0);
}

TEST_F(HttpFeaturesTest, UnknownSetIs404) {
    auto res = get("/v1/features/no_such_set/42");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 404);
    EXPECT_EQ((*res)[http::field::content_type], "application/json");
    EXPECT_EQ(error_code_of(*res), "feature_set_not_found");
    EXPECT_EQ(reader_.calls(), 0);
}

TEST_F(HttpFeaturesTest, UnknownKeyIs404) {
    auto res = get("/v1/features/user_activity/nobody");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 404);
    EXPECT_EQ(error_code_of(*res), "key_not_found");
    EXPECT_EQ(reader_.calls(), 1);
}

TEST_F(HttpFeaturesTest, ReaderErrorIs503WithItsMessage) {
    reader_.fail_with("redis: connection refused");
    auto res = get("/v1/features/user_activity/42");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 503);
    const json body = body_json(*res);
    EXPECT_EQ(body["error"]["code"], "store_unavailable");
    EXPECT_EQ(body["error"]["message"], "redis: connection refused");
}

TEST_F(HttpFeaturesTest, ReaderThatThrowsIs500AndTheServerCarriesOn) {
    reader_.throw_on_call(true);
    wire_client c = connect();
    auto res = c.request(http::verb::get, "/v1/features/user_activity/42");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 500);
    EXPECT_EQ(error_code_of(*res), "internal_error");
    EXPECT_EQ(body_json(*res)["error"]["message"], "internal error");  // no internals leak
    reader_.throw_on_call(false);
    auto next = c.request(http::verb::get, "/v1/features/user_activity/42");
    ASSERT_TRUE(next);
    EXPECT_EQ(next->result_int(), 404);
}

TEST_F(HttpFeaturesTest, KeyInPathIsUrlDecoded) {
    const std::string key = "a/b c\xC3\xA9";
    latest_entry e;
    e.key = key;
    e.event_time_ms = now_ms();
    e.values = {value{std::int64_t{7}}};
    reader_.put(0, e);
    auto res = get("/v1/features/user_activity/a%2Fb%20c%C3%A9");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->result_int(), 200);
    EXPECT_EQ(body_json(*res)["key"], key);
    ASSERT_EQ(reader_.keys_asked().size(), 1u);
    EXPECT_EQ(reader_.keys_asked()[0], key);
    // Fields the entry has no value for yet (added to the schema later) are null.
    EXPECT_EQ(body_json(*res)["values"]["clicks"], 7);
    EXPECT_TRUE(body_json(*res)["values"]["country"].is_null());
}

TEST_F(HttpFeaturesTest, ExpiredWhenOlderThanTheSetsTtl) {
    latest_entry e;
    e.key = "k";
    e.event_time_ms = now_ms() - 5000;  // short_lived has a 1 s TTL
    e.values = {value{std::int64_t{1}}};
    reader_.put(1, e);
    auto res = get("/v1/features/short_lived/k");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->result_int(), 200);
    EXPECT_EQ(body_json(*res)["status"], "EXPIRED");
    EXPECT_EQ(body_json(*res)["values"]["x"], 1);
}

TEST_F(HttpFeaturesTest, StaleWhenOlderThanMaxStaleness) {
    reader_.put(0, make_full_entry("42", now_ms() - 2000, now_ms()));
    auto stale = get("/v1/features/user_activity/42?max_staleness_ms=500");
    ASSERT_TRUE(stale);
    EXPECT_EQ(body_json(*stale)["status"], "STALE");
    auto fresh = get("/v1/features/user_activity/42?max_staleness_ms=60000");
    ASSERT_TRUE(fresh);
    EXPECT_EQ(body_json(*fresh)["status"], "PRESENT");
    auto bad = get("/v1/features/user_activity/42?max_staleness_ms=soon");
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->result_int(), 400);
    EXPECT_EQ(error_code_of(*bad), "bad_request");
}

TEST_F(HttpFeaturesTest, AsOfAsksTheReaderForThatMomentAndAgesFromIt) {
    const std::int64_t at = 1793527200000;  // 2026-11-01T10:00:00Z
    reader_.put(0, make_full_entry("42", at - 1000, at - 900));
    auto res = get("/v1/features/user_activity/42?as_of=2026-11-01T10:00:00Z");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 200);
    EXPECT_EQ(reader_.last_as_of(), at);
    // One second old at that moment: present, although it is long expired now.
    EXPECT_EQ(body_json(*res)["status"], "PRESENT");
    auto ms = get("/v1/features/user_activity/42?as_of=1793527200000");
    ASSERT_TRUE(ms);
    EXPECT_EQ(ms->result_int(), 200);
    EXPECT_EQ(reader_.last_as_of(), at);
    auto bad = get("/v1/features/user_activity/42?as_of=yesterday");
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->result_int(), 400);
    EXPECT_EQ(error_code_of(*bad), "bad_request");
}

TEST_F(HttpFeaturesTest, ReaderAnsweringLaterFromAnotherThread) {
    reader_.put(0, make_full_entry("42", now_ms(), now_ms()));
    // Longer than read_timeout (300 ms): waiting for the store is not a slow client.
    reader_.answer_from_thread(500ms);
    wire_client c = connect();
    const auto start = std::chrono::steady_clock::now();
    auto first = c.request(http::verb::get, "/v1/features/user_activity/42");
    ASSERT_TRUE(first);
    EXPECT_GE(std::chrono::steady_clock::now() - start, 500ms);
    EXPECT_EQ(first->result_int(), 200);
    EXPECT_EQ(body_json(*first)["values"]["clicks"], 42);
    // The connection stays usable for the next request.
    auto second = c.request(http::verb::get, "/v1/features/user_activity/missing");
    ASSERT_TRUE(second);
    EXPECT_EQ(second->result_int(), 404);
    EXPECT_EQ(error_code_of(*second), "key_not_found");
}

TEST_F(HttpFeaturesTest, SlowLookupsDoNotBlockOtherConnections) {
    reader_.answer_from_thread(1000ms);
    wire_client slow1 = connect();
    wire_client slow2 = connect();
    wire_client slow3 = connect();
    slow1.send(http::verb::get, "/v1/features/user_activity/a");
    slow2.send(http::verb::get, "/v1/features/user_activity/b");
    slow3.send(http::verb::get, "/v1/features/user_activity/c");
    const auto start = std::chrono::steady_clock::now();
    auto health = get("/healthz");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->result_int(), 200);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 800ms);  // not queued behind the lookups
    for (wire_client* c : {&slow1, &slow2, &slow3}) {
        auto res = c->read();
        ASSERT_TRUE(res);
        EXPECT_EQ(res->result_int(), 404);
    }
}

TEST_F(HttpFeaturesTest, UnknownPathIs404AndWrongMethodIs405WithAllow) {
    auto missing = get("/v2/nothing");
    ASSERT_TRUE(missing);
    EXPECT_EQ(missing->result_int(), 404);
    EXPECT_EQ(error_code_of(*missing), "not_found");

    wire_client c = connect();
    auto wrong = c.request(http::verb::post, "/v1/features/user_activity/42", {{"Content-Type", "application/json"}}, "{}");
    ASSERT_TRUE(wrong);
    EXPECT_EQ(wrong->result_int(), 405);
    EXPECT_EQ(error_code_of(*wrong), "method_not_allowed");
    EXPECT_EQ((*wrong)[http::field::allow], "GET");
}

class HttpHealthTest : public HttpServerFixture {};

TEST_F(HttpHealthTest, HealthzIsAlwaysOk) {
    health_.set_reasons({"postgres: down"});
    auto res = get("/healthz");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 200);
    EXPECT_EQ(res->body(), R"({"status":"ok"})");
    EXPECT_EQ((*res)[http::field::content_type], "application/json");
}

TEST_F(HttpHealthTest, ReadyzReportsReadiness) {
    auto ready = get("/readyz");
    ASSERT_TRUE(ready);
    EXPECT_EQ(ready->result_int(), 200);
    EXPECT_EQ(ready->body(), R"({"status":"ready"})");

    health_.set_reasons({"postgres: connection refused", "kafka: no partitions assigned"});
    auto not_ready = get("/readyz");
    ASSERT_TRUE(not_ready);
    EXPECT_EQ(not_ready->result_int(), 503);
    EXPECT_EQ(body_json(*not_ready),
              json::parse(R"({"status":"not_ready","reasons":["postgres: connection refused","kafka: no partitions assigned"]})"));
}

class HttpAuthTest : public HttpServerFixture {
protected:
    void configure(config& cfg) override {
        cfg.http.api_keys = {{"ranker", read_key_sha256, {"read"}}, {"loader", write_key_sha256, {"write"}}};
    }
    void SetUp() override {
        HttpServerFixture::SetUp();
        reader_.put(0, make_full_entry("42", now_ms(), now_ms()));
    }
};

TEST_F(HttpAuthTest, MissingKeyIs401WithChallenge) {
    auto res = get("/v1/features/user_activity/42");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 401);
    EXPECT_EQ(error_code_of(*res), "unauthorized");
    EXPECT_EQ((*res)[http::field::www_authenticate], "Bearer");
    EXPECT_EQ(reader_.calls(), 0);
}

TEST_F(HttpAuthTest, WrongKeyIs401) {
    auto bearer = get("/v1/features/user_activity/42", {{"Authorization", "Bearer read-kez"}});
    ASSERT_TRUE(bearer);
    EXPECT_EQ(bearer->result_int(), 401);
    EXPECT_EQ(error_code_of(*bearer), "unauthorized");
    auto header = get("/v1/features/user_activity/42", {{"X-API-Key", "8578df6c579d44d3bf7caeada69ed9cbca30b318a50a0e60216b46760edf5477"}});
    ASSERT_TRUE(header);
    EXPECT_EQ(header->result_int(), 401);  // the stored hash is not a key
    auto basic = get("/v1/features/user_activity/42", {{"Authorization", "Basic cmVhZC1rZXk="}});
    ASSERT_TRUE(basic);
    EXPECT_EQ(basic->result_int(), 401);
    EXPECT_EQ(reader_.calls(), 0);
}

TEST_F(HttpAuthTest, BearerKeyWithScopeIsServed) {
    auto res = get("/v1/features/user_activity/42", {{"Authorization", "Bearer read-key"}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 200);
    EXPECT_EQ(body_json(*res)["key"], "42");
    auto lower = get("/v1/features/user_activity/42", {{"Authorization", "bearer   read-key "}});
    ASSERT_TRUE(lower);
    EXPECT_EQ(lower->result_int(), 200);
}

TEST_F(HttpAuthTest, XApiKeyHeaderIsServed) {
    auto res = get("/v1/features/user_activity/42", {{"X-API-Key", "read-key"}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 200);
}

TEST_F(HttpAuthTest, KeyWithoutTheScopeIs403) {
    auto res = get("/v1/features/user_activity/42", {{"Authorization", "Bearer write-key"}});
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 403);
    EXPECT_EQ(error_code_of(*res), "forbidden");
    EXPECT_EQ(reader_.calls(), 0);
}

TEST_F(HttpAuthTest, HealthRoutesNeedNoKey) {
    auto health = get("/healthz");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->result_int(), 200);
    auto ready = get("/readyz");
    ASSERT_TRUE(ready);
    EXPECT_EQ(ready->result_int(), 200);
}

TEST_F(HttpAuthTest, UnknownPathsAreNotRevealedWithoutAKey) {
    auto anonymous = get("/v1/secret-things");
    ASSERT_TRUE(anonymous);
    EXPECT_EQ(anonymous->result_int(), 401);
    auto known = get("/v1/secret-things", {{"X-API-Key", "write-key"}});
    ASSERT_TRUE(known);
    EXPECT_EQ(known->result_int(), 404);
}

}  // namespace
}  // namespace sluice::testing
