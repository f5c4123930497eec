// Live reload's classification: which changes apply at once, which wait for a restart, which
// refuse the reload; the effective config it then runs; the config as GET /v1/admin/config shows
// it, secrets redacted.

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "sluice/config/loader.hpp"
#include "sluice/config/reload.hpp"

namespace sluice {
namespace {

const std::string set_body = R"({"name": "users", "topic": "t", "key": "id", "event_time": "ts",
    "fields": {"clicks": {"type": "int"}, "country": {"type": "string"}}})";

// A config from its sections beside feature_sets (a JSON fragment ending in a comma, or "").
config load(const std::string& sections, const std::string& sets = set_body) {
    const std::string text = "{" + sections + R"( "kafka": {"brokers": "embedded"}, "feature_sets": [)" + sets + "]}";
    auto loaded = load_config_text(text);
    EXPECT_TRUE(loaded.ok()) << format_errors(loaded.errors) << text;
    return loaded.cfg;
}

const config_change* find(const reload_plan& p, const std::string& path) {
    for (const auto& c : p.changes)
        if (c.path == path) return &c;
    return nullptr;
}

TEST(Reload, NothingChangedIsNoChange) {
    const auto p = plan_reload(load(""), load(""));
    EXPECT_TRUE(p.changes.empty());
    EXPECT_FALSE(p.breaking());
}

TEST(Reload, KeysRateLimitsAndLimitsApplyLiveAndAreInTheEffectiveConfig) {
    const auto running = load(R"("http": {"rate_limit": {"requests_per_sec": 5}},)");
    const auto next = load(R"("http": {"rate_limit": {"requests_per_sec": 50}, "body_limit_bytes": 4096, "read_timeout_ms": 2000,
        "auth": {"api_keys": [{"name": "ops", "sha256": ")" + std::string(64, 'a') + R"(", "scopes": ["admin"]}]}},
        "log": {"level": "debug"},)");
    const auto p = plan_reload(running, next);
    ASSERT_EQ(p.changes.size(), 5u);
    for (const auto& c : p.changes) EXPECT_EQ(c.applied, change_class::live) << c.path;
    ASSERT_NE(find(p, "http.auth.api_keys"), nullptr);
    EXPECT_EQ(find(p, "http.auth.api_keys")->change, "added ops") << "names, never digests";
    EXPECT_EQ(find(p, "http.rate_limit.requests_per_sec")->change, "5.0 -> 50.0");
    EXPECT_EQ(p.effective.http.rate_limit.requests_per_sec, 50);
    EXPECT_EQ(p.effective.http.body_limit_bytes, 4096);
    EXPECT_EQ(p.effective.http.api_keys.size(), 1u);
    EXPECT_EQ(p.effective.log.level, "debug");
    EXPECT_TRUE(p.pending_restart().empty());
}

TEST(Reload, ThreadsListenAndStoresWaitForARestartAndKeepTheirRunningValues) {
    const auto running = load(R"("pipeline": {"preprocess_threads": 1}, "http": {"listen": "127.0.0.1:1"},)");
    const auto next = load(R"("pipeline": {"preprocess_threads": 4}, "http": {"listen": "127.0.0.1:2"},
        "redis": {"port": 7000},)");
    const auto p = plan_reload(running, next);
    EXPECT_FALSE(p.breaking());
    const auto pending = p.pending_restart();
    for (const char* path : {"pipeline.preprocess_threads", "http.listen", "redis"})
        EXPECT_NE(std::find(pending.begin(), pending.end(), path), pending.end()) << path;
    EXPECT_EQ(p.effective.pipeline.preprocess_threads, 1);
    EXPECT_EQ(p.effective.http.listen, "127.0.0.1:1");
    EXPECT_FALSE(p.effective.redis.has_value());
}

TEST(Reload, TtlTransformsAndDedupApplyLiveAndAFieldAddedWaits) {
    const auto running = load("");
    const auto live = plan_reload(running, load("", R"({"name": "users", "topic": "t", "key": "id", "event_time": "ts",
        "ttl": "2h", "transforms": [{"op": "upper", "field": "country"}], "dedup": {"field": "country"},
        "fields": {"clicks": {"type": "int"}, "country": {"type": "string"}}})"));
    for (const char* path : {"feature_sets[users].ttl", "feature_sets[users].transforms", "feature_sets[users].dedup"}) {
        ASSERT_NE(find(live, path), nullptr) << path;
        EXPECT_EQ(find(live, path)->applied, change_class::live) << path;
    }
    EXPECT_EQ(live.effective.feature_sets[0].ttl_ms, 2 * 3600 * 1000);
    EXPECT_EQ(live.effective.feature_sets[0].transforms.size(), 1u);
    EXPECT_TRUE(live.effective.feature_sets[0].dedup.enabled());

    const auto field = plan_reload(running, load("", R"({"name": "users", "topic": "t", "key": "id", "event_time": "ts",
        "transforms": [{"op": "upper", "field": "tier"}],
        "fields": {"clicks": {"type": "int"}, "country": {"type": "string"}, "tier": {"type": "string"}}})"));
    ASSERT_NE(find(field, "feature_sets[users].field tier"), nullptr);
    EXPECT_EQ(find(field, "feature_sets[users].field tier")->applied, change_class::restart);
    EXPECT_EQ(find(field, "feature_sets[users].transforms")->applied, change_class::restart)
        << "a transform of a field not yet read waits with it";
    EXPECT_TRUE(field.effective.feature_sets[0].transforms.empty());
}

TEST(Reload, AFieldsNewTypeAKeyOrTheEnvironmentRefuseTheWholeReload) {
    const auto running = load("");
    const auto type = plan_reload(running, load(R"("http": {"body_limit_bytes": 4096},)", R"({"name": "users", "topic": "t",
        "key": "id", "event_time": "ts", "fields": {"clicks": {"type": "string"}, "country": {"type": "string"}}})"));
    EXPECT_TRUE(type.breaking());
    ASSERT_NE(find(type, "feature_sets[users].field clicks"), nullptr);
    EXPECT_NE(find(type, "feature_sets[users].field clicks")->note.find("raise \"version\""), std::string::npos);
    EXPECT_TRUE(plan_reload(running, load(R"("environment": "production",)")).breaking());
}

TEST(Reload, ASetWithANewNameIsAddedLiveAndANewVersionWaits) {
    const auto running = load("");
    const std::string other = R"({"name": "orders", "topic": "o", "key": "id", "event_time": "ts", "fields": {"n": {"type": "int"}}})";
    const auto added = plan_reload(running, load("", other + "," + set_body));
    ASSERT_NE(find(added, "feature_sets[orders]"), nullptr);
    EXPECT_EQ(find(added, "feature_sets[orders]")->applied, change_class::live);
    ASSERT_EQ(added.effective.feature_sets.size(), 2u);
    EXPECT_EQ(added.effective.feature_sets[0].name, "users") << "running sets keep their places; added ones follow";
    EXPECT_EQ(added.effective.feature_sets[1].name, "orders");

    const auto version = plan_reload(running, load("", set_body + R"(, {"name": "users", "version": 2, "topic": "t", "key": "id",
        "event_time": "ts", "fields": {"clicks": {"type": "int"}}})"));
    EXPECT_EQ(find(version, "feature_sets[users@2]")->applied, change_class::restart);
    EXPECT_EQ(version.effective.feature_sets.size(), 1u);

    const auto removed = plan_reload(load("", other + "," + set_body), running);
    EXPECT_EQ(find(removed, "feature_sets[orders]")->applied, change_class::restart);
    EXPECT_EQ(removed.effective.feature_sets.size(), 2u) << "a set left out keeps running until a restart";
}

TEST(Reload, TheShownConfigRedactsEverySecret) {
    const auto cfg = load(R"("postgres": {"dsn": "host=db user=u password='p w' dbname=d"},
        "redis": {"password": "hunter2"},
        "http": {"auth": {"api_keys": [{"name": "ops", "sha256": ")" + std::string(64, 'b') + R"(", "scopes": ["admin"]}]}},)");
    config with_props = cfg;
    with_props.kafka.properties = {{"sasl.password", "s3cret"}, {"ssl.key.password", "k"}, {"fetch.min.bytes", "1"}};
    const std::string shown = config_to_json(with_props).dump();
    for (const char* secret : {"p w", "hunter2", "bbbbbbbb", "s3cret", "\"k\""})
        EXPECT_EQ(shown.find(secret), std::string::npos) << secret << " shows in " << shown;
    EXPECT_NE(shown.find("host=db user=u password=<redacted> dbname=d"), std::string::npos) << shown;
    EXPECT_NE(shown.find("\"fetch.min.bytes\":\"1\""), std::string::npos);
    EXPECT_NE(shown.find("\"name\":\"ops\""), std::string::npos);
    const auto uri = load(R"("postgres": {"dsn": "postgresql://u:pw@db/d"},)");
    EXPECT_EQ(config_to_json(uri)["postgres"]["dsn"], "postgresql://u:<redacted>@db/d");
}

}  // namespace
}  // namespace sluice
