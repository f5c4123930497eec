// The HTTP API of the README's API on the wire, against the real daemon with PostgreSQL, Redis and the
// Kafka protocol: push ingestion (answered after durability), single and batch reads with their
// statuses, as-of lookups, the Feast-compatible route, history paging, the catalog's live figures
// and /metrics as Prometheus' own checker reads it.
//
// One daemon serves the whole suite; each test uses keys of its own.

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "integration/support/suite.hpp"

namespace it = sluice::it;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr const char* k_topic = "api-events";
constexpr const char* k_profile_topic = "api-profiles";
constexpr std::int64_t k_hour = 3600 * 1000;

const it::http_headers k_json = {{"Content-Type", "application/json"}};

json parse(const it::http_response& r) {
    auto j = json::parse(r.body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON: " << r.body;
    return j;
}

}  // namespace

class Api : public it::stack_suite<Api> {
public:
    static std::vector<it::topic_spec> topics() { return {{k_topic, 2}, {k_profile_topic, 1}}; }

protected:
    static void SetUpTestSuite() {
        it::stack_suite<Api>::SetUpTestSuite();
        if (!stack_) return;
        port_ = it::free_port();
        json cfg = it::user_activity_config(*stack_, "api-" + it::random_suffix(), port_, k_topic);
        auto& activity = cfg["feature_sets"][0];
        activity["fields"]["event_id"] = {{"type", "string"}};
        activity["dedup"] = {{"field", "event_id"}, {"window", "1h"}};
        activity["aggregations"] = json::array({{{"name", "clicks_sum_1h"}, {"field", "clicks"}, {"op", "sum"}, {"window", "1h"}},
                                                {{"name", "clicks_count_1h"}, {"field", "clicks"}, {"op", "count"}, {"window", "1h"}}});
        activity["allowed_lateness"] = "30d";
        cfg["feature_sets"].push_back({{"name", "user_profile"},
                                       {"topic", k_profile_topic},
                                       {"key", "user_id"},
                                       {"event_time", "ts"},
                                       {"fields", {{"tier", {{"type", "string"}}}, {"age", {{"type", "int"}}}}},
                                       {"ttl", "30d"}});
        cfg["http"]["max_lookup_keys"] = 50;
        cfg["http"]["ingest_timeout_ms"] = 3000;
        cfg["feature_services"] = json::array({{{"name", "ranker"}, {"features", {"user_activity:clicks", "user_profile:tier"}}}});
        cfg["push_sources"] = json::array({{{"name", "activity_push"}, {"feature_sets", {"user_activity"}}}});
        feature_sets_ = cfg["feature_sets"];
        daemon_ = std::make_unique<it::daemon_process>(cfg);
        daemon_->start();
        if (!daemon_->wait_http_ready(port_, 30s) || !daemon_->wait_http_ready(port_, 60s, "/readyz"))
            setup_error_ = "the daemon did not become ready:\n" + daemon_->log_tail();
    }
    static void TearDownTestSuite() {
        if (daemon_) {
            auto st = daemon_->terminate(30s);
            EXPECT_TRUE(st && st->exited && st->code == 0) << "the daemon did not stop cleanly";
        }
        daemon_.reset();
        it::stack_suite<Api>::TearDownTestSuite();
    }
    void SetUp() override {
        it::stack_suite<Api>::SetUp();
        ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    }

    static it::http_response push(const std::string& set, const std::string& body,
                                  const it::http_headers& headers = k_json) {
        return it::http_request(port_, "POST", "/v1/ingest/" + set, body, headers, 30s);
    }
    static it::http_response post(const std::string& target, const json& body) {
        return it::http_request(port_, "POST", target, body.dump(), k_json);
    }
    static json event(const std::string& key, std::int64_t ts, int clicks, json extra = json::object()) {
        json e = {{"user_id", key}, {"ts", ts}, {"clicks", clicks}, {"spend", 1.5}, {"country", "DE"}};
        for (auto& [k, v] : extra.items()) e[k] = v;
        return e;
    }

    static inline int port_ = 0;
    static inline std::unique_ptr<it::daemon_process> daemon_;
    static inline json feature_sets_;  // the running daemon's definitions
};

TEST_F(Api, push_answers_after_durability_and_reports_each_bad_record) {
    const std::int64_t t = it::now_ms() - 60000;
    const std::string slash_key = "tenant/7 user é";  // '/', a space and UTF-8 in one key

    // A JSON array: two good records, one missing its required field.
    json batch = json::array({event("push-a", t, 3), event(slash_key, t, 4), {{"user_id", "push-b"}, {"ts", t}}});
    auto r = push("user_activity", batch.dump());
    ASSERT_EQ(r.status, 200) << r.body;
    json body = parse(r);
    EXPECT_EQ(body["accepted"], 2);
    EXPECT_EQ(body["rejected"], 1);
    ASSERT_EQ(body["errors"].size(), 1u);
    EXPECT_EQ(body["errors"][0]["index"], 2);
    EXPECT_NE(body["errors"][0]["error"].get<std::string>().find("clicks"), std::string::npos) << body;

    // Durable when answered: PostgreSQL has the rows right now, and the bad one as a dead letter.
    const std::string dsn = stack_->postgres.dsn();
    EXPECT_EQ(it::pg_count(dsn, "SELECT count(*) FROM sluice.user_activity_latest WHERE key = ANY($1)",
                           {"{\"push-a\",\"" + slash_key + "\"}"}),
              2);
    EXPECT_EQ(it::pg_count(dsn, "SELECT count(*) FROM sluice.dead_letters WHERE src_topic = 'http' AND error LIKE '%clicks%'"
                                " AND convert_from(payload, 'UTF8') LIKE '%push-b%'"),
              1);

    // The key with '/', a space and UTF-8 reads back through its URL-encoded path.
    auto got = it::http_get(port_, "/v1/features/user_activity/" + it::url_encode(slash_key));
    ASSERT_EQ(got.status, 200) << got.body;
    EXPECT_EQ(parse(got)["key"], slash_key);
    EXPECT_EQ(parse(got)["values"]["clicks"], 4);

    // NDJSON with a line that is not JSON; a blank line is not a record.
    const std::string nd = event("push-c", t, 1).dump() + "\n\nnot json\n" + event("push-d", t, 2).dump() + "\n";
    r = push("user_activity", nd, {{"Content-Type", "application/x-ndjson"}});
    ASSERT_EQ(r.status, 200) << r.body;
    body = parse(r);
    EXPECT_EQ(body["accepted"], 2);
    ASSERT_EQ(body["errors"].size(), 1u);
    EXPECT_EQ(body["errors"][0]["index"], 1);

    // One object; then the same event id again is accepted but skipped (dedup), changing nothing.
    r = push("user_activity", event("push-e", t, 9, {{"event_id", "e-1"}}).dump());
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(parse(r)["accepted"], 1);
    r = push("user_activity", event("push-e", t + 1000, 100, {{"event_id", "e-1"}}).dump());
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(parse(r)["skipped"], 1);
    EXPECT_EQ(parse(it::http_get(port_, "/v1/features/user_activity/push-e"))["values"]["clicks"], 9);

    // Whole-request errors.
    EXPECT_EQ(push("no_such_set", event("x", t, 1).dump()).status, 404);
    EXPECT_EQ(push("user_activity", "{not json").status, 400);
    auto wrong_type = push("user_activity", "a,b\n1,2", {{"Content-Type", "text/csv"}});
    EXPECT_EQ(wrong_type.status, 415);
    EXPECT_EQ(parse(wrong_type)["error"]["code"], "unsupported_media_type");
}

TEST_F(Api, lookup_keeps_order_and_reports_each_key_status) {
    const std::int64_t now = it::now_ms();
    json batch = json::array({event("lk-fresh", now - 1000, 1), event("lk-old", now - 2 * 24 * k_hour, 2),
                              event("lk-minute", now - 60000, 3)});
    ASSERT_EQ(push("user_activity", batch.dump()).status, 200);

    auto r = post("/v1/features/lookup", {{"feature_set", "user_activity"},
                                          {"keys", {"lk-minute", "lk-missing", "lk-old", "lk-fresh"}},
                                          {"fields", {"clicks", "clicks_count_1h"}},
                                          {"max_staleness_ms", 30000}});
    ASSERT_EQ(r.status, 200) << r.body;
    json res = parse(r)["results"];
    ASSERT_EQ(res.size(), 4u);
    EXPECT_EQ(res[0]["key"], "lk-minute");
    EXPECT_EQ(res[0]["status"], "STALE");  // a minute old, 30 s asked for
    EXPECT_EQ(res[1]["key"], "lk-missing");
    EXPECT_EQ(res[1]["status"], "NOT_FOUND");
    EXPECT_TRUE(res[1]["values"].is_null());
    EXPECT_EQ(res[2]["status"], "EXPIRED");  // two days old, TTL 24 h
    EXPECT_EQ(res[3]["status"], "PRESENT");
    EXPECT_EQ(res[3]["values"], json({{"clicks", 1}, {"clicks_count_1h", 1}}));

    // Limits and mistakes.
    json many = json::array();
    for (int i = 0; i < 51; ++i) many.push_back("k" + std::to_string(i));
    auto too_many = post("/v1/features/lookup", {{"feature_set", "user_activity"}, {"keys", many}});
    EXPECT_EQ(too_many.status, 400);
    EXPECT_EQ(parse(too_many)["error"]["code"], "too_many_keys");
    EXPECT_EQ(post("/v1/features/lookup", {{"feature_set", "nope"}, {"keys", {"a"}}}).status, 404);
    auto unknown = post("/v1/features/lookup", {{"feature_set", "user_activity"}, {"keys", {"a"}}, {"fields", {"nope"}}});
    EXPECT_EQ(unknown.status, 400);
    EXPECT_EQ(parse(unknown)["error"]["code"], "unknown_field");
    EXPECT_EQ(post("/v1/features/lookup", {{"feature_set", "user_activity"}}).status, 400);
    EXPECT_EQ(it::http_request(port_, "GET", "/v1/features/lookup").status, 405);
}

TEST_F(Api, as_of_lookups_single_and_batch_return_values_and_aggregates_of_that_moment) {
    const std::int64_t t0 = it::now_ms() - 3 * k_hour;
    // Two keys, events 20 minutes apart; at t0+50min the 1 h sum covers the events at t0+0..40.
    json batch = json::array();
    for (int i = 0; i < 6; ++i) {
        batch.push_back(event("asof-a", t0 + i * 20 * 60000, 10 + i));
        batch.push_back(event("asof-b", t0 + i * 20 * 60000 + 5000, 100 * (i + 1)));
    }
    ASSERT_EQ(push("user_activity", batch.dump()).status, 200);
    const std::int64_t at = t0 + 50 * 60000;
    // Brute force over the same events: sum and count of clicks in (at - 1h, at].
    auto expect_at = [&](int base, int step, int offset_ms) {
        long long sum = 0, count = 0;
        for (int i = 0; i < 6; ++i) {
            const std::int64_t ts = t0 + i * 20 * 60000 + offset_ms;
            if (ts <= at && ts > at - k_hour) sum += base + step * i, ++count;
        }
        return std::pair{sum, count};
    };
    auto r = post("/v1/features/lookup",
                  {{"feature_set", "user_activity"}, {"keys", {"asof-b", "asof-a", "asof-none"}}, {"as_of", it::rfc3339_ms(at)}});
    ASSERT_EQ(r.status, 200) << r.body;
    json res = parse(r)["results"];
    ASSERT_EQ(res.size(), 3u);
    const auto [sum_a, count_a] = expect_at(10, 1, 0);
    const auto [sum_b, count_b] = expect_at(100, 100, 5000);
    EXPECT_EQ(res[1]["values"]["clicks"], 12);  // the event at t0+40min
    EXPECT_EQ(res[1]["values"]["clicks_sum_1h"], sum_a);
    EXPECT_EQ(res[1]["values"]["clicks_count_1h"], count_a);
    EXPECT_EQ(res[0]["values"]["clicks"], 300);
    EXPECT_EQ(res[0]["values"]["clicks_sum_1h"], sum_b);
    EXPECT_EQ(res[0]["values"]["clicks_count_1h"], count_b);
    EXPECT_EQ(res[1]["event_time"], it::rfc3339_ms(t0 + 40 * 60000));
    EXPECT_EQ(res[2]["status"], "NOT_FOUND");

    // The single route agrees with the batch (epoch ms this time).
    auto one = it::http_get(port_, "/v1/features/user_activity/asof-a?as_of=" + std::to_string(at));
    ASSERT_EQ(one.status, 200) << one.body;
    EXPECT_EQ(parse(one)["values"], res[1]["values"]);
    EXPECT_EQ(post("/v1/features/lookup", {{"feature_set", "user_activity"}, {"keys", {"a"}}, {"as_of", "yesterday"}}).status,
              400);
}

// Feast's Python feature server as feast-dev/feast f0bc0700 defines it: sdk/python/feast/
// feature_server.py (the routes, the request model at 122-127, the error handler at 1070-1084),
// feature_server_utils.py (the response: 27-67, timestamps: 131-152), utils.py (statuses:
// 1712-1744; columns: 1116-1130, 1755-1762), errors.py (the error detail: 38-69; status codes),
// and sdk/python/tests/unit/test_feature_server.py (the assertions reproduced here).
TEST_F(Api, feast_route_answers_like_feasts_feature_server) {
    const std::int64_t now = it::now_ms() / 1000 * 1000 + 123;  // a time with milliseconds
    // Entities as Feast's examples send them: integers.
    json activity = json::array({event("1001", now - 5000, 7), event("1002", now - 5000, 8, {{"spend", nullptr}}),
                                 event("1004", now - 3 * 24 * k_hour, 9)});
    ASSERT_EQ(push("user_activity", activity.dump()).status, 200);
    const std::int64_t whole_second = now / 1000 * 1000 - 1000;
    json profiles = json::array({{{"user_id", "1001"}, {"ts", whole_second}, {"tier", "gold"}, {"age", 31}}});
    ASSERT_EQ(push("user_profile", profiles.dump()).status, 200);

    // The request of Feast's documentation, sent the way its curl example sends it (curl -d).
    const std::string request = R"({
        "features": ["user_activity:clicks", "user_profile:tier", "user_activity:spend"],
        "entities": {"user_id": [1001, 1002, 1003, 1004]}
    })";
    auto r = it::http_request(port_, "POST", "/get-online-features", request,
                              {{"Content-Type", "application/x-www-form-urlencoded"}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body.rfind("{\"results\":", 0), 0u) << "Feast writes results before metadata (feature_server_utils.py:39-62)";
    json body = parse(r);
    EXPECT_EQ(body["metadata"]["feature_names"], json({"user_id", "clicks", "tier", "spend"}));
    json results = body["results"];
    ASSERT_EQ(results.size(), 4u);
    // The entity column echoes the entities: PRESENT, the zero timestamp (utils.py:1116-1130;
    // test_feature_server.py:150-154 checks results[0].values == [123] and "PRESENT").
    EXPECT_EQ(results[0]["values"], json({1001, 1002, 1003, 1004}));
    EXPECT_EQ(results[0]["statuses"], json({"PRESENT", "PRESENT", "PRESENT", "PRESENT"}));
    EXPECT_EQ(results[0]["event_timestamps"][0], "1970-01-01T00:00:00Z");
    // clicks across the four rows: row 3 unknown (NOT_FOUND, null, the zero timestamp); row 4 older
    // than the TTL: OUTSIDE_MAX_AGE with its value kept, as Feast's Go and Java servers mark it.
    EXPECT_EQ(results[1]["values"], json({7, 8, nullptr, 9}));
    EXPECT_EQ(results[1]["statuses"], json({"PRESENT", "PRESENT", "NOT_FOUND", "OUTSIDE_MAX_AGE"}));
    EXPECT_EQ(results[1]["event_timestamps"][0], it::rfc3339_ms(now - 5000));
    EXPECT_EQ(results[1]["event_timestamps"][2], "1970-01-01T00:00:00Z");
    // tier from the other feature set, joined on the same entity; a whole second has no fraction.
    EXPECT_EQ(results[2]["values"], json({"gold", nullptr, nullptr, nullptr}));
    EXPECT_EQ(results[2]["statuses"], json({"PRESENT", "NOT_FOUND", "NOT_FOUND", "NOT_FOUND"}));
    std::string second = it::rfc3339_ms(whole_second);
    second.replace(second.size() - 5, 5, "Z");
    EXPECT_EQ(results[2]["event_timestamps"][0], second);
    // spend: a value, and a stored null: PRESENT with null, as Feast's Python server answers it
    // (utils.py:1712-1744 never emits NULL_VALUE).
    EXPECT_EQ(results[3]["values"][0], 1.5);
    EXPECT_TRUE(results[3]["values"][1].is_null());
    EXPECT_EQ(results[3]["statuses"][1], "PRESENT");
    for (const auto& res : results) {
        EXPECT_EQ(res["values"].size(), 4u);
        EXPECT_EQ(res["statuses"].size(), 4u);
        EXPECT_EQ(res["event_timestamps"].size(), 4u);
    }

    // full_feature_names tells sets apart.
    r = post("/get-online-features", {{"features", {"user_activity:clicks", "user_profile:age"}},
                                      {"entities", {{"user_id", {"1001"}}}},
                                      {"full_feature_names", true}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(parse(r)["metadata"]["feature_names"], json({"user_id", "user_activity__clicks", "user_profile__age"}));
    EXPECT_EQ(parse(r)["results"][2]["values"], json({31}));

    // Errors as Feast's server gives them, and as its client decodes them (rest_error_handler.py:
    // response.json() must be a string that FeastError.from_error_detail turns into the class).
    auto feast_error = [&](const json& req, int status, const std::string& cls, const std::string& message) {
        SCOPED_TRACE(req.dump());
        const auto e = post("/get-online-features", req);
        EXPECT_EQ(e.status, status) << e.body;
        const json outer = json::parse(e.body, nullptr, false);
        ASSERT_TRUE(outer.is_string()) << "the body is a JSON string: " << e.body;
        const json detail = json::parse(outer.get<std::string>(), nullptr, false);
        ASSERT_TRUE(detail.is_object()) << outer;
        EXPECT_EQ(detail.value("module", ""), "feast.errors");
        EXPECT_EQ(detail.value("class", ""), cls);
        EXPECT_EQ(detail.value("message", ""), message);
    };
    // The same name twice: FeatureNameCollisionError, a FeastError without its own status: 500.
    feast_error({{"features", {"user_activity:clicks", "user_activity:clicks"}}, {"entities", {{"user_id", {"1001"}}}}}, 500,
                "FeatureNameCollisionError",
                "Duplicate features named clicks found.\nTo resolve this collision, either use the full feature name by "
                "setting 'full_feature_names=True', or ensure that the features in question have different names.");
    feast_error({{"features", {"nope:clicks"}}, {"entities", {{"user_id", {"1"}}}}}, 404, "FeatureViewNotFoundException",
                "Feature view nope does not exist in project default");
    feast_error({{"feature_service", "nope"}, {"entities", {{"user_id", {"1"}}}}}, 404, "FeatureServiceNotFoundException",
                "Feature service nope does not exist in project default");
    // An entity column no set uses: an error here (Feast drops it silently).
    feast_error({{"features", {"user_activity:clicks"}}, {"entities", {{"user_id", {"1"}}, {"userid", {"1"}}}}}, 404,
                "EntityNotFoundException", "Entity userid does not exist in project default");
    // Not Feast errors: 500 with the message as a JSON string (feature_server.py:1083).
    auto plain = post("/get-online-features", {{"features", {"user_activity:nope"}}, {"entities", {{"user_id", {"1"}}}}});
    EXPECT_EQ(plain.status, 500);
    EXPECT_EQ(json::parse(plain.body, nullptr, false), json("'Feature nope not found in projection user_activity'"));
    plain = post("/get-online-features", {{"entities", {{"user_id", {"1"}}}}});
    EXPECT_EQ(plain.status, 500);
    EXPECT_EQ(json::parse(plain.body, nullptr, false), json("No features specified for retrieval"));
    // A body the request model refuses: FastAPI's 422.
    auto invalid = post("/get-online-features", {{"features", {"user_activity:clicks"}}});
    EXPECT_EQ(invalid.status, 422);
    EXPECT_EQ(parse(invalid)["detail"][0]["loc"], json({"body", "entities"}));
    EXPECT_EQ(parse(invalid)["detail"][0]["type"], "missing");

    // GET /health, the Feast operator's probe: 200, empty.
    const auto health = it::http_get(port_, "/health");
    EXPECT_EQ(health.status, 200);
    EXPECT_EQ(health.body, "");
}

// Feast's writes: POST /push (feature_server.py:812-908) and POST /write-to-online-store
// (feature_server.py:920-933) as Feast's remote online store sends it (remote.py:246-296), and a
// feature service read back; the cases of sdk/python/tests/unit/test_feature_server.py.
TEST_F(Api, feast_push_write_to_online_store_and_feature_services) {
    const std::string now_text = it::rfc3339_ms(it::now_ms() - 2000);
    // test_push_and_get (test_feature_server.py:119-135): a push, then a read of what it pushed.
    auto r = post("/push", {{"push_source_name", "activity_push"},
                            {"df", {{"user_id", {"fp-1", "fp-2"}}, {"clicks", {55, 56}}, {"spend", {1.25, 2.5}},
                                    {"event_timestamp", {now_text, now_text}}}},
                            {"to", "online"}});
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, "") << "Feast answers a push with an empty body";
    r = post("/get-online-features", {{"feature_service", "ranker"}, {"entities", {{"user_id", {"fp-1", "fp-2"}}}}});
    ASSERT_EQ(r.status, 200) << r.body;
    json body = parse(r);
    EXPECT_EQ(body["metadata"]["feature_names"], json({"user_id", "clicks", "tier"}));
    EXPECT_EQ(body["results"][1]["values"], json({55, 56}));
    EXPECT_EQ(body["results"][1]["statuses"], json({"PRESENT", "PRESENT"}));
    // "offline" and "online_and_offline" write through the same pipeline (history is the offline store).
    for (const char* to : {"offline", "online_and_offline"}) {
        r = post("/push", {{"push_source_name", "activity_push"},
                           {"df", {{"user_id", {std::string("fp-") + to}}, {"clicks", {1}}, {"ts", {it::now_ms()}}}},
                           {"to", to}});
        EXPECT_EQ(r.status, 200) << to << ": " << r.body;
    }
    // test_push_source_does_not_exist (test_feature_server.py:157-171): PushSourceNotFoundException, 422.
    r = post("/push", {{"push_source_name", "push_source_does_not_exist"},
                       {"df", {{"any_data", {1}}, {"event_timestamp", {now_text}}}}});
    EXPECT_EQ(r.status, 422) << r.body;
    const json outer = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(outer.is_string()) << r.body;
    const json detail = json::parse(outer.get<std::string>());
    EXPECT_EQ(detail["class"], "PushSourceNotFoundException");
    EXPECT_EQ(detail["message"], "Unable to find push source 'push_source_does_not_exist'.");
    // A push format Feast does not know; columns of unequal lengths; a row the set refuses.
    r = post("/push", {{"push_source_name", "activity_push"}, {"df", {{"user_id", {"x"}}}}, {"to", "sideways"}});
    EXPECT_EQ(r.status, 500);
    EXPECT_EQ(json::parse(r.body, nullptr, false),
              json("sideways is not a supported push format. Please specify one of these ['online', 'offline', "
                   "'online_and_offline']."));
    r = post("/push", {{"push_source_name", "activity_push"}, {"df", {{"user_id", {"x", "y"}}, {"clicks", {1}}}}});
    EXPECT_EQ(r.status, 500);
    EXPECT_EQ(json::parse(r.body, nullptr, false), json("All arrays must be of the same length"));
    r = post("/push", {{"push_source_name", "activity_push"},
                       {"df", {{"user_id", {"fp-bad"}}, {"spend", {1.0}}, {"event_timestamp", {now_text}}}}});
    EXPECT_EQ(r.status, 500);
    EXPECT_NE(r.body.find("1 of 1 rows rejected (kept as dead letters)"), std::string::npos) << r.body;
    r = post("/push", {{"df", {}}});
    EXPECT_EQ(r.status, 422);
    EXPECT_EQ(parse(r)["detail"][0]["loc"], json({"body", "push_source_name"}));

    // What Feast's remote online store sends (remote.py:279-283): naive UTC isoformat() times in
    // "event_timestamp", a "created" column; the answer is 200 with the body null.
    const std::int64_t at = it::now_ms() / 1000 * 1000 - 3000;
    std::string naive = it::rfc3339_ms(at);
    naive.resize(naive.size() - 5);  // "2026-12-08T04:00:00"
    r = post("/write-to-online-store", {{"feature_view_name", "user_profile"},
                                        {"allow_registry_cache", false},
                                        {"df", {{"user_id", {"fp-1"}}, {"tier", {"silver"}}, {"age", {40}},
                                                {"event_timestamp", {naive}}, {"created", {nullptr}}}}});
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, "null");
    auto g = it::http_get(port_, "/v1/features/user_profile/fp-1");
    ASSERT_EQ(g.status, 200) << g.body;
    EXPECT_EQ(parse(g)["values"]["tier"], "silver");
    EXPECT_EQ(parse(g)["event_time"], it::rfc3339_ms(at)) << "a naive time is UTC";
    r = post("/write-to-online-store", {{"feature_view_name", "nope"}, {"df", {{"user_id", {"x"}}}}});
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(json::parse(json::parse(r.body).get<std::string>())["class"], "FeastObjectNotFoundException");
}

TEST_F(Api, history_pages_newest_first_with_a_cursor) {
    const std::int64_t t0 = it::now_ms() - 10 * k_hour;
    json batch = json::array();
    for (int i = 0; i < 25; ++i) batch.push_back(event("hist-a", t0 + i * 60000, i));
    // Two rows at the same event time: paging must return both, once each.
    batch.push_back(event("hist-a", t0 + 12 * 60000, 1000));
    ASSERT_EQ(push("user_activity", batch.dump()).status, 200);

    std::vector<int> seen;
    std::string cursor;
    int pages = 0;
    std::int64_t previous = std::numeric_limits<std::int64_t>::max();
    do {
        std::string target = "/v1/features/user_activity/hist-a/history?limit=7";
        if (!cursor.empty()) target += "&cursor=" + it::url_encode(cursor);
        auto r = it::http_get(port_, target);
        ASSERT_EQ(r.status, 200) << r.body;
        json body = parse(r);
        for (const auto& rec : body["records"]) {
            seen.push_back(rec["values"]["clicks"].get<int>());
            const auto t = rec["event_time"].get<std::string>();
            std::int64_t ms = 0;
            for (int i = 0; i < 26; ++i)
                if (it::rfc3339_ms(t0 + i * 60000) == t) ms = t0 + i * 60000;
            EXPECT_LE(ms, previous) << "not newest first";
            previous = ms;
            EXPECT_FALSE(rec["values"].contains("clicks_sum_1h")) << "history holds fields, not aggregates";
        }
        cursor = body["next_cursor"].is_null() ? "" : body["next_cursor"].get<std::string>();
        ASSERT_LT(++pages, 10);
    } while (!cursor.empty());
    EXPECT_EQ(pages, 4);
    ASSERT_EQ(seen.size(), 26u);
    EXPECT_EQ(std::multiset<int>(seen.begin(), seen.end()).count(1000), 1u);
    std::set<int> distinct(seen.begin(), seen.end());
    EXPECT_EQ(distinct.size(), 26u) << "a row came twice or went missing across pages";

    // [from, to) by event time.
    auto window = it::http_get(port_, "/v1/features/user_activity/hist-a/history?from=" + it::rfc3339_ms(t0 + 5 * 60000) +
                                          "&to=" + std::to_string(t0 + 8 * 60000));
    ASSERT_EQ(window.status, 200) << window.body;
    json recs = parse(window)["records"];
    ASSERT_EQ(recs.size(), 3u);
    EXPECT_EQ(recs[0]["values"]["clicks"], 7);
    EXPECT_EQ(recs[2]["values"]["clicks"], 5);
    EXPECT_TRUE(parse(window)["next_cursor"].is_null());

    EXPECT_EQ(it::http_get(port_, "/v1/features/user_activity/hist-a/history?limit=0").status, 400);
    EXPECT_EQ(it::http_get(port_, "/v1/features/user_activity/hist-a/history?limit=10001").status, 400);
    EXPECT_EQ(it::http_get(port_, "/v1/features/user_activity/hist-a/history?cursor=garbage").status, 400);
    auto none = it::http_get(port_, "/v1/features/user_activity/hist-none/history");
    ASSERT_EQ(none.status, 200);
    EXPECT_TRUE(parse(none)["records"].empty());
}

TEST_F(Api, catalog_and_metrics_show_live_figures) {
    auto before = parse(it::http_get(port_, "/v1/feature-sets/user_activity"))["figures"];
    const auto in_before = before["records_in"].get<long long>();
    const auto rejected_before = before["rejected"].get<long long>();

    // 40 events through Kafka, 3 good and 1 bad through push.
    const std::int64_t now = it::now_ms();
    for (int i = 0; i < 40; ++i)
        stack_->kafka.produce(k_topic, "cat-" + std::to_string(i), event("cat-" + std::to_string(i), now - 1000, i).dump());
    stack_->kafka.flush();
    json batch = json::array({event("cat-p1", now, 1), event("cat-p2", now, 2), event("cat-p3", now, 3), {{"ts", now}}});
    ASSERT_EQ(push("user_activity", batch.dump()).status, 200);

    json figures;
    const bool caught_up = it::wait_until(20s, [&] {
        figures = parse(it::http_get(port_, "/v1/feature-sets/user_activity"))["figures"];
        return figures["records_in"].get<long long>() >= in_before + 43 && figures["consumer_lag"] == 0;
    });
    ASSERT_TRUE(caught_up) << figures;
    EXPECT_EQ(figures["records_in"].get<long long>(), in_before + 43);
    EXPECT_EQ(figures["rejected"].get<long long>(), rejected_before + 1);
    EXPECT_FALSE(figures["last_event_time"].is_null());
    EXPECT_GE(figures["freshness_ms"].get<long long>(), 0);

    auto list = parse(it::http_get(port_, "/v1/feature-sets"));
    ASSERT_EQ(list["feature_sets"].size(), 2u);
    EXPECT_EQ(list["feature_sets"][1]["name"], "user_profile");
    EXPECT_EQ(list["feature_sets"][0]["aggregations"][0]["name"], "clicks_sum_1h");
    EXPECT_EQ(it::http_get(port_, "/v1/feature-sets/nope").status, 404);

    // /metrics in the Prometheus text format, as promtool reads it.
    auto m = it::http_get(port_, "/metrics");
    ASSERT_EQ(m.status, 200);
    EXPECT_EQ(m.headers["content-type"].rfind("text/plain; version=0.0.4", 0), 0u) << m.headers["content-type"];
    const std::string file = daemon_->log_path().parent_path() / "metrics.txt";
    std::ofstream(file) << m.body;
    const std::string check = "promtool check metrics < " + file + " > " + file + ".out 2>&1";
    EXPECT_EQ(std::system(check.c_str()), 0) << [&] {
        std::ifstream in(file + ".out");
        return std::string(std::istreambuf_iterator<char>(in), {});
    }();
    EXPECT_NE(m.body.find("sluice_records_total{environment=\"default\",feature_set=\"user_activity\",outcome=\"written\"} " +
                          std::to_string(in_before + 43)),
              std::string::npos)
        << m.body.substr(0, 3000);
    EXPECT_NE(m.body.find("sluice_http_request_duration_seconds_bucket{environment=\"default\",method=\"POST\",route=\"/v1/ingest/{set}\""),
              std::string::npos);
    EXPECT_NE(m.body.find("sluice_consumer_lag_messages{environment=\"default\",feature_set=\"user_activity\"} 0"), std::string::npos);
    // Where traced records' time goes, by stage, and no batch fenced out (one instance).
    for (const char* stage : {"consumed", "parsed", "batched", "memory", "committed", "redis"})
        EXPECT_NE(m.body.find(std::string("sluice_record_stage_seconds_count{environment=\"default\",stage=\"") + stage + "\"}"), std::string::npos)
            << stage;
    EXPECT_NE(m.body.find("sluice_write_fenced_total{environment=\"default\"} 0"), std::string::npos);
}

TEST_F(Api, with_the_memory_index_off_reads_come_from_redis_then_postgresql) {
    const std::int64_t now = it::now_ms();
    json batch = json::array({event("cold-redis", now - 1000, 11), event("cold-pg", now - 1000, 22)});
    ASSERT_EQ(push("user_activity", batch.dump()).status, 200);
    // Gone from Redis: only PostgreSQL still has it.
    it::redis_client redis(stack_->redis.port());
    redis.command({"DEL", std::string(it::default_key_prefix) + ":user_activity:cold-pg"});

    // A second daemon, memory index off, reading the same stores (its own group and port).
    const int port = it::free_port();
    json cfg = it::user_activity_config(*stack_, "api-cold-" + it::random_suffix(), port, k_topic);
    cfg["memory"] = {{"enabled", false}};
    // The same definitions as the running daemon: another would be a change to them.
    cfg["feature_sets"] = feature_sets_;
    it::daemon_process cold(cfg);
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(cold, port, "cold"));
    auto r = it::http_request(port, "POST", "/v1/features/lookup",
                              json{{"feature_set", "user_activity"}, {"keys", {"cold-pg", "cold-none", "cold-redis"}}}.dump(),
                              k_json);
    ASSERT_EQ(r.status, 200) << r.body;
    json res = parse(r)["results"];
    ASSERT_EQ(res.size(), 3u);
    EXPECT_EQ(res[0]["status"], "PRESENT");
    EXPECT_EQ(res[0]["values"]["clicks"], 22);
    EXPECT_EQ(res[1]["status"], "NOT_FOUND");
    EXPECT_EQ(res[2]["values"]["clicks"], 11);
    auto one = it::http_get(port, "/v1/features/user_activity/cold-pg");
    ASSERT_EQ(one.status, 200) << one.body;
    EXPECT_EQ(parse(one)["values"]["clicks"], 22);
    auto hot = it::http_get(port, "/v1/features/user_activity/cold-redis");
    ASSERT_EQ(hot.status, 200) << hot.body;
    EXPECT_EQ(parse(hot)["values"]["clicks"], 11);
    EXPECT_EQ(it::http_get(port, "/v1/features/user_activity/cold-none").status, 404);

    // Redis goes away: single reads answer from PostgreSQL, at once for as long as it is away.
    stack_->redis.stop();
    for (int i = 0; i < 5; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        auto r = it::http_get(port, "/v1/features/user_activity/cold-redis", 10s);
        ASSERT_EQ(r.status, 200) << r.body << r.error;
        EXPECT_EQ(parse(r)["values"]["clicks"], 11);
        EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s) << "a read waited on the stopped Redis";
    }
    // Back: a key only Redis has (PostgreSQL would say 404) is read from it again.
    stack_->redis.start();
    it::redis_client back(stack_->redis.port());
    back.command({"HSET", std::string(it::default_key_prefix) + ":user_activity:only-redis", "_event_time",
                   std::to_string(now - 500), "_ingested_at", std::to_string(now - 400), "clicks", "33"});
    int status = 0;
    for (int i = 0; i < 100 && status != 200; ++i) {
        status = it::http_get(port, "/v1/features/user_activity/only-redis", 5s).status;
        if (status != 200) std::this_thread::sleep_for(100ms);
    }
    EXPECT_EQ(status, 200) << "reads did not go back to Redis after it returned";
    auto st = cold.terminate(30s);
    EXPECT_TRUE(st && st->ok());
}

TEST_F(Api, a_stalled_postgresql_slows_only_the_requests_that_need_it) {
    ASSERT_EQ(push("user_activity", json::array({event("stall-a", it::now_ms(), 1)}).dump()).status, 200);
    // Another session holds the history table: every history read waits for it.
    it::pg_client locker(stack_->postgres.dsn());
    locker.query("BEGIN");
    locker.query("LOCK TABLE sluice.user_activity_history IN ACCESS EXCLUSIVE MODE");
    it::http_response slow;
    std::thread reader([&] { slow = it::http_get(port_, "/v1/features/user_activity/stall-a/history", 30s); });
    std::this_thread::sleep_for(500ms);

    // Meanwhile the io threads serve everything else at once.
    for (int i = 0; i < 20; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        auto r = it::http_get(port_, "/v1/features/user_activity/stall-a", 5s);
        EXPECT_EQ(r.status, 200) << r.error;
        EXPECT_EQ(it::http_get(port_, "/healthz", 5s).status, 200);
        EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s) << "a memory read waited for PostgreSQL";
    }
    EXPECT_EQ(slow.status, 0) << "the history read should still be waiting for the lock";
    locker.query("ROLLBACK");
    reader.join();
    EXPECT_EQ(slow.status, 200) << slow.body << slow.error;
    EXPECT_EQ(parse(slow)["records"].size(), 1u);
}

TEST_F(Api, a_record_is_readable_while_postgresql_is_still_writing_it) {
    // memory.before_commit (the default): the writer puts a batch into memory as it takes it. With
    // history locked, the batch cannot commit, yet its record is served; it is durable once the
    // lock goes.
    it::pg_client locker(stack_->postgres.dsn());
    locker.query("BEGIN");
    locker.query("LOCK TABLE sluice.user_activity_history IN ACCESS EXCLUSIVE MODE");
    it::http_response pushed;
    std::thread pusher([&] { pushed = push("user_activity", event("early-a", it::now_ms(), 41).dump()); });
    int status = 0;
    json values;
    const bool seen = it::wait_until(10s, [&] {
        const auto r = it::http_get(port_, "/v1/features/user_activity/early-a", 5s);
        status = r.status;
        if (r.status == 200) values = parse(r)["values"];
        return r.status == 200;
    });
    EXPECT_TRUE(seen) << "not readable while its batch waited for PostgreSQL (last status " << status << ")";
    EXPECT_EQ(values["clicks"], 41);
    EXPECT_EQ(it::pg_count(stack_->postgres.dsn(), "SELECT count(*) FROM sluice.user_activity_latest WHERE key = 'early-a'"),
              0)
        << "the batch committed although history was locked";
    locker.query("ROLLBACK");
    pusher.join();
    // The push waited for durability: answered 200 once committed, or 503 after
    // http.ingest_timeout_ms; either way the record is written once the lock is gone.
    EXPECT_TRUE(pushed.status == 200 || pushed.status == 503) << pushed.status << " " << pushed.body;
    EXPECT_TRUE(it::wait_until(20s, [&] {
        return it::pg_count(stack_->postgres.dsn(),
                            "SELECT count(*) FROM sluice.user_activity_latest WHERE key = 'early-a'") == 1;
    }));
}

// Last: it stops the suite's PostgreSQL.
TEST_F(Api, push_fails_loudly_when_postgresql_is_away_and_works_again_after) {
    const std::int64_t now = it::now_ms();
    stack_->postgres.stop();
    const auto t0 = std::chrono::steady_clock::now();
    auto r = push("user_activity", event("down-a", now, 1).dump());
    const auto waited = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(r.status, 503) << r.body;
    EXPECT_EQ(parse(r)["error"]["code"], "store_unavailable");
    EXPECT_LT(waited, 20s) << "the answer should come at http.ingest_timeout_ms (3 s)";
    stack_->postgres.start();

    // Once PostgreSQL is back, the writer catches up and new pushes are durable again.
    bool ok = it::wait_until(40s, [&] { return push("user_activity", event("down-b", now, 2).dump()).status == 200; });
    ASSERT_TRUE(ok) << daemon_->log_tail();
    EXPECT_EQ(it::pg_count(stack_->postgres.dsn(), "SELECT count(*) FROM sluice.user_activity_latest WHERE key = 'down-b'"),
              1);
    // The push that timed out was not lost either: it was written when PostgreSQL came back.
    EXPECT_TRUE(it::wait_until(20s, [&] {
        return it::pg_count(stack_->postgres.dsn(),
                            "SELECT count(*) FROM sluice.user_activity_latest WHERE key = 'down-a'") == 1;
    }));
}
