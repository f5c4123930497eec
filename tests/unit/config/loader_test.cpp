// Tests of the config loader: what a user sees for good and bad config files (feature sets in
// feature_set_reader_test.cpp).

#include "sluice/config/loader.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "config_test_support.hpp"

namespace sluice {
namespace {

using testing_support::all_errors;
using testing_support::has_error;
using testing_support::with_set;

const char* const full_config = R"({
  // Every section, every key.
  "kafka": {
    "brokers": "10.0.0.1:9092,10.0.0.2:9092",
    "group_id": "ranker-features",
    "consumer_threads": 3,
    "max_message_bytes": 2097152,
    "properties": { "fetch.wait.max.ms": 50, "enable.partition.eof": false, "client.id": "sluice-1",
                    "ratio": 0.5 },
    "dead_letter_topic": "sluice-dlq",
    "poll_timeout_ms": 250,
    "embedded": { "brokers": 3, "partitions": 8 }
  },
  "feature_sets": [
    {
      "name": "user_activity", "topic": "user-events",
      "key": "user_id", "event_time": "ts",   /* block comments work too */
      "fields": {
        "clicks":  {"type": "int", "required": true, "min": 0, "max": 1000000, "default": 0},
        "spend":   {"type": "double", "min": 0},
        "premium": {"type": "bool", "default": true},
        "country": {"type": "string", "required": false, "default": "??"},
        "seen_at": {"type": "timestamp", "default": "2026-11-21T10:00:00.123Z"},
        "first":   {"type": "timestamp", "default": 1700000000000},
        "extra":   {"type": "json", "default": {"a": [1, 2], "b": null}}
      },
      "ttl": "7d"
    },
    { "name": "item_stats", "topic": "item-events", "key": "item_id", "event_time": "time", "fields": {},
      "ttl": "0" }
  ],
  "pipeline": { "preprocess_threads": 2, "queue_capacity": 4096, "batch_max_records": 100, "batch_linger_ms": 0,
                "pause_watermark": 0.8, "resume_watermark": 0.25, "shutdown_timeout_ms": 5000 },
  "postgres": { "dsn": "host=127.0.0.1 port=5432 dbname=sluice", "pool_size": 8, "schema": "features",
                "parallel_latest": true },
  "redis": { "host": "redis.local", "port": 6380, "pool_size": 2, "key_prefix": "sl", "username": "feeds", "password": "pw", "db": 3,
             "timeout_ms": 250 },
  "http": { "listen": "127.0.0.1:0", "threads": 2, "body_limit_bytes": 4096, "header_limit_bytes": 1024,
            "read_timeout_ms": 5000, "idle_timeout_ms": 30000, "write_timeout_ms": 20000, "lookup_threads": 4,
            "auth": { "api_keys": [
              {"name": "ranker", "sha256": "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",
               "scopes": ["read"]},
              {"name": "ops", "sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
               "scopes": ["read", "write", "admin"]} ] } },
  "log": { "level": "debug", "format": "json" },
  "generator": { "enabled": true, "events_per_sec": 0.5, "keys": 10 }
})";

TEST(ConfigLoader, FullConfigFillsEverySection) {
    const auto r = load_config_text(full_config);
    ASSERT_TRUE(r.ok()) << all_errors(r);
    const config& c = r.cfg;

    EXPECT_EQ(c.kafka.brokers, "10.0.0.1:9092,10.0.0.2:9092");
    EXPECT_FALSE(c.kafka.is_embedded());
    EXPECT_EQ(c.kafka.group_id, "ranker-features");
    EXPECT_EQ(c.kafka.consumer_threads, 3);
    EXPECT_EQ(c.kafka.max_message_bytes, 2097152);
    EXPECT_EQ(c.kafka.properties.at("fetch.wait.max.ms"), "50");
    EXPECT_EQ(c.kafka.properties.at("enable.partition.eof"), "false");
    EXPECT_EQ(c.kafka.properties.at("client.id"), "sluice-1");
    EXPECT_EQ(c.kafka.properties.at("ratio"), "0.5");
    EXPECT_EQ(c.kafka.dead_letter_topic, "sluice-dlq");
    EXPECT_EQ(c.kafka.poll_timeout_ms, 250);
    EXPECT_EQ(c.kafka.embedded.brokers, 3);
    EXPECT_EQ(c.kafka.embedded.partitions, 8);

    ASSERT_EQ(c.feature_sets.size(), 2u);
    const auto& fs = c.feature_sets[0];
    EXPECT_EQ(fs.name, "user_activity");
    EXPECT_EQ(fs.topic, "user-events");
    EXPECT_EQ(fs.key_field, "user_id");
    EXPECT_EQ(fs.event_time_field, "ts");
    EXPECT_EQ(fs.ttl_ms, 7LL * 86400 * 1000);
    ASSERT_EQ(fs.fields.size(), 7u);
    // Fields keep the order of the file, not alphabetical order.
    EXPECT_EQ(fs.fields[0].name, "clicks");
    EXPECT_EQ(fs.fields[1].name, "spend");
    EXPECT_EQ(fs.fields[6].name, "extra");

    EXPECT_EQ(fs.fields[0].type, field_type::int64);
    EXPECT_TRUE(fs.fields[0].required);
    EXPECT_EQ(fs.fields[0].min, 0.0);
    EXPECT_EQ(fs.fields[0].max, 1000000.0);
    EXPECT_EQ(std::get<std::int64_t>(fs.fields[0].default_value), 0);

    EXPECT_EQ(fs.fields[1].type, field_type::float64);
    EXPECT_FALSE(fs.fields[1].required);
    EXPECT_EQ(fs.fields[1].min, 0.0);
    EXPECT_FALSE(fs.fields[1].max.has_value());
    EXPECT_TRUE(std::holds_alternative<std::monostate>(fs.fields[1].default_value));

    EXPECT_EQ(fs.fields[2].type, field_type::boolean);
    EXPECT_EQ(std::get<bool>(fs.fields[2].default_value), true);
    EXPECT_EQ(fs.fields[3].type, field_type::string);
    EXPECT_EQ(std::get<std::string>(fs.fields[3].default_value), "??");
    EXPECT_EQ(fs.fields[4].type, field_type::timestamp);
    EXPECT_EQ(std::get<std::int64_t>(fs.fields[4].default_value), 1795255200123);
    EXPECT_EQ(std::get<std::int64_t>(fs.fields[5].default_value), 1700000000000);
    EXPECT_EQ(fs.fields[6].type, field_type::json);
    EXPECT_EQ(std::get<std::string>(fs.fields[6].default_value), R"({"a":[1,2],"b":null})");

    EXPECT_EQ(c.feature_sets[1].name, "item_stats");
    EXPECT_TRUE(c.feature_sets[1].fields.empty());
    EXPECT_EQ(c.feature_sets[1].ttl_ms, 0);
    EXPECT_EQ(c.find_set("item_stats"), 1);

    EXPECT_EQ(c.pipeline.preprocess_threads, 2);
    EXPECT_EQ(c.pipeline.queue_capacity, 4096);
    EXPECT_EQ(c.pipeline.batch_max_records, 100);
    EXPECT_EQ(c.pipeline.batch_linger_ms, 0);
    EXPECT_DOUBLE_EQ(c.pipeline.pause_watermark, 0.8);
    EXPECT_DOUBLE_EQ(c.pipeline.resume_watermark, 0.25);
    EXPECT_EQ(c.pipeline.shutdown_timeout_ms, 5000);

    ASSERT_TRUE(c.postgres.has_value());
    EXPECT_EQ(c.postgres->dsn, "host=127.0.0.1 port=5432 dbname=sluice");
    EXPECT_EQ(c.postgres->pool_size, 8);
    EXPECT_EQ(c.postgres->schema, "features");
    EXPECT_TRUE(c.postgres->parallel_latest);

    ASSERT_TRUE(c.redis.has_value());
    EXPECT_EQ(c.redis->host, "redis.local");
    EXPECT_EQ(c.redis->port, 6380);
    EXPECT_EQ(c.redis->pool_size, 2);
    EXPECT_EQ(c.redis->key_prefix, "sl");
    EXPECT_EQ(c.redis->username, "feeds");
    EXPECT_EQ(c.redis->password, "pw");
    EXPECT_EQ(c.redis->db, 3);
    EXPECT_EQ(c.redis->timeout_ms, 250);

    EXPECT_EQ(c.http.listen, "127.0.0.1:0");
    EXPECT_EQ(c.http.threads, 2);
    EXPECT_EQ(c.http.body_limit_bytes, 4096);
    EXPECT_EQ(c.http.header_limit_bytes, 1024);
    EXPECT_EQ(c.http.read_timeout_ms, 5000);
    EXPECT_EQ(c.http.idle_timeout_ms, 30000);
    EXPECT_EQ(c.http.write_timeout_ms, 20000);
    EXPECT_EQ(c.http.lookup_threads, 4);
    ASSERT_EQ(c.http.api_keys.size(), 2u);
    EXPECT_EQ(c.http.api_keys[0].name, "ranker");
    // Uppercase hex is accepted and stored lowercase, as the auth check compares it.
    EXPECT_EQ(c.http.api_keys[0].sha256, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    EXPECT_EQ(c.http.api_keys[0].scopes, std::vector<std::string>{"read"});
    EXPECT_EQ(c.http.api_keys[1].scopes, (std::vector<std::string>{"read", "write", "admin"}));

    EXPECT_EQ(c.log.level, "debug");
    EXPECT_EQ(c.log.format, "json");

    EXPECT_TRUE(c.generator.enabled);
    EXPECT_DOUBLE_EQ(c.generator.events_per_sec, 0.5);
    EXPECT_EQ(c.generator.keys, 10);
}

TEST(ConfigLoader, OmittedSectionsKeepTheirDefaults) {
    const auto r = load_config_text(with_set(""));
    ASSERT_TRUE(r.ok()) << all_errors(r);
    const config& c = r.cfg;
    const config defaults;
    EXPECT_EQ(c.kafka.brokers, defaults.kafka.brokers);
    EXPECT_EQ(c.kafka.group_id, "sluice");
    EXPECT_EQ(c.kafka.consumer_threads, 1);
    EXPECT_EQ(c.kafka.max_message_bytes, 1048576);
    EXPECT_TRUE(c.kafka.properties.empty());
    EXPECT_EQ(c.kafka.poll_timeout_ms, defaults.kafka.poll_timeout_ms);
    EXPECT_EQ(c.feature_sets[0].ttl_ms, 24LL * 3600 * 1000);
    EXPECT_TRUE(c.feature_sets[0].fields.empty());
    EXPECT_EQ(c.pipeline.queue_capacity, 65536);
    EXPECT_DOUBLE_EQ(c.pipeline.pause_watermark, defaults.pipeline.pause_watermark);
    EXPECT_FALSE(c.postgres.has_value());
    EXPECT_FALSE(c.redis.has_value());
    EXPECT_EQ(c.http.listen, "0.0.0.0:8080");
    EXPECT_TRUE(c.http.api_keys.empty());
    EXPECT_EQ(c.log.level, "info");
    EXPECT_FALSE(c.generator.enabled);
}

TEST(ConfigLoader, EmptySectionsKeepDefaultsAndTurnStoresOn) {
    const auto r = load_config_text(with_set("", R"("kafka": {}, "pipeline": {}, "redis": {}, "http": {"auth": {}})"));
    ASSERT_TRUE(r.ok()) << all_errors(r);
    ASSERT_TRUE(r.cfg.redis.has_value());
    EXPECT_EQ(r.cfg.redis->port, 6379);
    EXPECT_EQ(r.cfg.redis->key_prefix, "sluice");
    EXPECT_FALSE(r.cfg.postgres.has_value());

    const auto null_store = load_config_text(with_set("", R"("postgres": null)"));
    ASSERT_TRUE(null_store.ok()) << all_errors(null_store);
    EXPECT_FALSE(null_store.cfg.postgres.has_value());
}

TEST(ConfigLoader, EmbeddedBrokers) {
    const auto r = load_config_text(with_set("", R"("kafka": {"brokers": "embedded"})"));
    ASSERT_TRUE(r.ok()) << all_errors(r);
    EXPECT_TRUE(r.cfg.kafka.is_embedded());
    EXPECT_EQ(r.cfg.kafka.embedded.partitions, 4);
}

TEST(ConfigLoader, CommentsAreAllowed) {
    const auto r = load_config_text(R"(// leading comment
{
  // a line comment
  "feature_sets": [ { "name": "a", "topic": "t", "key": "k", "event_time": "ts" } ], // trailing
  /* a block
     comment */
  "log": { "level": "warn" }
})");
    ASSERT_TRUE(r.ok()) << all_errors(r);
    EXPECT_EQ(r.cfg.log.level, "warn");
}

TEST(ConfigLoader, SyntaxErrorIsOneErrorWithLineAndColumn) {
    const auto r = load_config_text("{\n  \"log\": { \"level\": \"info\" },\n  ,\n}");
    ASSERT_EQ(r.errors.size(), 1u) << all_errors(r);
    EXPECT_EQ(r.errors[0].path, "");
    EXPECT_NE(r.errors[0].message.find("line 3"), std::string::npos) << r.errors[0].message;
    EXPECT_NE(r.errors[0].message.find("column"), std::string::npos) << r.errors[0].message;
    EXPECT_EQ(r.errors[0].message.find("[json.exception"), std::string::npos) << r.errors[0].message;

    EXPECT_FALSE(load_config_text("").ok());
}

TEST(ConfigLoader, AbsurdNestingIsOneError) {
    const std::string deep = std::string(100000, '[') + std::string(100000, ']');
    const auto r = load_config_text(with_set(R"("fields": {"j": {"type": "json", "default": )" + deep + "}}"));
    ASSERT_EQ(r.errors.size(), 1u) << all_errors(r);
    EXPECT_NE(r.errors[0].message.find("levels deep"), std::string::npos) << r.errors[0].message;
    EXPECT_EQ(r.errors[0].path.rfind("feature_sets[0].fields.j.default[0]", 0), 0u) << r.errors[0].path;
}

TEST(ConfigLoader, TopLevelMustBeAnObject) {
    const auto r = load_config_text("[1, 2]");
    EXPECT_TRUE(has_error(r, "", "must be a JSON object, got array"));
}

TEST(ConfigLoader, UnknownKeyNamesItsPathAndSuggests) {
    const auto r = load_config_text(with_set(R"("fields": {"spend": {"type": "double", "minimum": 0}})",
                                             R"("kafka": {"consumer_thread": 2}, "htp": {}, "zzz": 1)"));
    EXPECT_TRUE(has_error(r, "kafka.consumer_thread", "unknown key (did you mean \"consumer_threads\"?)"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].fields.spend.minimum", "unknown key"));
    EXPECT_TRUE(has_error(r, "htp", "did you mean \"http\"?"));
    EXPECT_TRUE(has_error(r, "zzz", "unknown key"));
    EXPECT_EQ(format_errors(r.errors).find("zzz: unknown key (did"), std::string::npos);
}

TEST(ConfigLoader, UnknownKeyWithOddCharactersIsQuotedInThePath) {
    const auto r = load_config_text(with_set("", R"("redis": {"key prefix": "x"})"));
    EXPECT_TRUE(has_error(r, R"(redis["key prefix"])", "unknown key"));
}

TEST(ConfigLoader, WrongTypes) {
    const auto r = load_config_text(with_set(R"("ttl": 24)",
                                             R"("http": {"threads": "4", "listen": 8080},
                                                "pipeline": {"preprocess_threads": 1.5, "pause_watermark": "high"},
                                                "generator": {"enabled": 1}, "log": [])"));
    EXPECT_TRUE(has_error(r, "http.threads", "expected integer, got string"));
    EXPECT_TRUE(has_error(r, "http.listen", "expected string, got integer"));
    EXPECT_TRUE(has_error(r, "pipeline.preprocess_threads", "expected integer, got 1.5"));
    EXPECT_TRUE(has_error(r, "pipeline.pause_watermark", "expected number, got string"));
    EXPECT_TRUE(has_error(r, "generator.enabled", "expected boolean, got integer"));
    EXPECT_TRUE(has_error(r, "log", "expected object, got array"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].ttl", "expected string, got integer"));
}

TEST(ConfigLoader, DoublesAcceptIntegers) {
    const auto r = load_config_text(with_set("", R"("pipeline": {"pause_watermark": 1, "resume_watermark": 0},
                                                    "generator": {"events_per_sec": 100})"));
    ASSERT_TRUE(r.ok()) << all_errors(r);
    EXPECT_DOUBLE_EQ(r.cfg.pipeline.pause_watermark, 1.0);
    EXPECT_DOUBLE_EQ(r.cfg.generator.events_per_sec, 100.0);
}

TEST(ConfigLoader, ARedisUserNeedsAPassword) {
    const auto r = load_config_text(with_set("", R"("redis": {"host": "r", "username": "feeds"})"));
    EXPECT_TRUE(has_error(r, "redis.username", "needs redis.password: Redis authenticates an ACL user by its password"))
        << all_errors(r);
    EXPECT_TRUE(load_config_text(with_set("", R"("redis": {"host": "r", "username": "feeds", "password": "pw"})")).ok());
    EXPECT_TRUE(load_config_text(with_set("", R"("redis": {"host": "r", "password": "pw"})")).ok());
}

TEST(ConfigLoader, OutOfRange) {
    const auto r = load_config_text(with_set("", R"("pipeline": {"queue_capacity": 3},
        "kafka": {"consumer_threads": 0, "max_message_bytes": 18446744073709551615, "embedded": {"partitions": 257}},
        "redis": {"port": 70000, "db": 16}, "http": {"header_limit_bytes": 100, "write_timeout_ms": 50},
        "generator": {"events_per_sec": 0.01})"));
    EXPECT_TRUE(has_error(r, "pipeline.queue_capacity", "must be between 16 and 16777216, got 3"));
    EXPECT_TRUE(has_error(r, "kafka.consumer_threads", "must be between 1 and 64, got 0"));
    EXPECT_TRUE(has_error(r, "kafka.max_message_bytes", "must be between 1 and 104857600, got 18446744073709551615"));
    EXPECT_TRUE(has_error(r, "kafka.embedded.partitions", "must be between 1 and 256, got 257"));
    EXPECT_TRUE(has_error(r, "redis.port", "must be between 1 and 65535, got 70000"));
    EXPECT_TRUE(has_error(r, "redis.db", "must be between 0 and 15, got 16"));
    EXPECT_TRUE(has_error(r, "http.header_limit_bytes", "must be between 512 and 1048576, got 100"));
    EXPECT_TRUE(has_error(r, "http.write_timeout_ms", "must be between 100 and 3600000, got 50"));
    EXPECT_TRUE(has_error(r, "generator.events_per_sec", "must be between 0.1 and 100000, got 0.01"));
}

TEST(ConfigLoader, ResumeWatermarkMustBeBelowPause) {
    const auto r = load_config_text(with_set("", R"("pipeline": {"pause_watermark": 0.5, "resume_watermark": 0.5})"));
    EXPECT_TRUE(has_error(r, "pipeline.resume_watermark", "must be less than pause_watermark (0.5), got 0.5"));
    const auto low = load_config_text(with_set("", R"("pipeline": {"pause_watermark": 0.05})"));
    EXPECT_TRUE(has_error(low, "pipeline.pause_watermark", "must be between 0.1 and 1, got 0.05"));
}

TEST(ConfigLoader, MissingRequiredKeys) {
    const auto no_sets = load_config_text(R"({"log": {}})");
    EXPECT_TRUE(has_error(no_sets, "feature_sets", "required key is missing"));

    const auto empty_sets = load_config_text(R"({"feature_sets": []})");
    EXPECT_TRUE(has_error(empty_sets, "feature_sets", "at least one feature set"));

    const auto r = load_config_text(R"({"feature_sets": [ {"name": "a", "fields": {"x": {}}} ],
        "postgres": {}, "http": {"auth": {"api_keys": [ {"name": "ops"} ]}}})");
    EXPECT_TRUE(has_error(r, "feature_sets[0].topic", "required key is missing"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].key", "required key is missing"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].event_time", "required key is missing"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].fields.x.type", "required key is missing"));
    EXPECT_TRUE(has_error(r, "postgres.dsn", "required key is missing"));
    EXPECT_TRUE(has_error(r, "http.auth.api_keys[0].sha256", "required key is missing"));
    EXPECT_TRUE(has_error(r, "http.auth.api_keys[0].scopes", "required key is missing"));
    EXPECT_FALSE(has_error(r, "feature_sets[0].name"));
}

TEST(ConfigLoader, EmptyStringsWhereAValueIsNeeded) {
    const auto r = load_config_text(R"({"feature_sets": [ {"name": "a", "topic": "", "key": "k", "event_time": "ts"} ],
        "kafka": {"brokers": "", "group_id": ""}, "postgres": {"dsn": ""}, "redis": {"key_prefix": "a b"}})");
    EXPECT_TRUE(has_error(r, "feature_sets[0].topic", "must not be empty"));
    EXPECT_TRUE(has_error(r, "kafka.brokers", "must not be empty"));
    EXPECT_TRUE(has_error(r, "kafka.group_id", "must not be empty"));
    EXPECT_TRUE(has_error(r, "postgres.dsn", "must not be empty"));
    EXPECT_TRUE(has_error(r, "redis.key_prefix", "must not contain spaces"));
}

TEST(ConfigLoader, BadIdentifiers) {
    const auto r = load_config_text(R"({"feature_sets": [
        {"name": "User-Activity", "topic": "t1", "key": "k", "event_time": "ts",
         "fields": {"Spend": {"type": "double"}, "9lives": {"type": "int"}, "key": {"type": "string"},
                    "src_offset": {"type": "int"}, "ok_field": {"type": "int"}}},
        {"name": "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvw", "topic": "t2", "key": "k", "event_time": "ts"}
      ], "postgres": {"dsn": "x", "schema": "My Schema"}})");
    EXPECT_TRUE(has_error(r, "feature_sets[0].name", "must be an identifier"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].name", "\"User-Activity\""));
    EXPECT_TRUE(has_error(r, "feature_sets[1].name", "at most 48 characters"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].fields.Spend", "field name must be an identifier"));
    EXPECT_TRUE(has_error(r, R"(feature_sets[0].fields["9lives"])", "field name must be an identifier"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].fields.key", "reserved column name"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].fields.src_offset", "reserved column name"));
    EXPECT_FALSE(has_error(r, "feature_sets[0].fields.ok_field"));
    EXPECT_TRUE(has_error(r, "postgres.schema", "must be an identifier"));
}

TEST(ConfigLoader, FeatureSetNamesAndTopicsAreUnique) {
    const auto r = load_config_text(R"({"feature_sets": [
        {"name": "a", "topic": "t", "key": "k", "event_time": "ts"},
        {"name": "b", "topic": "t", "key": "k", "event_time": "ts"},
        {"name": "a", "topic": "u", "key": "k", "event_time": "ts"} ]})");
    EXPECT_TRUE(has_error(r, "feature_sets[2].name", "duplicate feature set name \"a\" (also feature_sets[0])"));
    EXPECT_TRUE(has_error(r, "feature_sets[1].topic", "topic \"t\" already feeds feature set \"a\""));
    EXPECT_EQ(r.errors.size(), 2u) << all_errors(r);
}

TEST(ConfigLoader, DuplicateJsonKeyIsAnError) {
    const auto r = load_config_text(with_set(R"("fields": {"spend": {"type": "double"}, "spend": {"type": "int"}})"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].fields.spend", "duplicate key"));
}

TEST(ConfigLoader, Ttl) {
    const auto ok = load_config_text(with_set(R"("ttl": "90m")"));
    ASSERT_TRUE(ok.ok()) << all_errors(ok);
    EXPECT_EQ(ok.cfg.feature_sets[0].ttl_ms, 90LL * 60 * 1000);

    const auto bad = load_config_text(with_set(R"("ttl": "1 day")"));
    EXPECT_TRUE(has_error(bad, "feature_sets[0].ttl", "invalid duration \"1 day\""));
}

TEST(ConfigDuration, ParsesEveryUnit) {
    std::int64_t ms = -1;
    ASSERT_TRUE(parse_duration_ms("0", ms));
    EXPECT_EQ(ms, 0);
    ASSERT_TRUE(parse_duration_ms("500ms", ms));
    EXPECT_EQ(ms, 500);
    ASSERT_TRUE(parse_duration_ms("30s", ms));
    EXPECT_EQ(ms, 30000);
    ASSERT_TRUE(parse_duration_ms("15m", ms));
    EXPECT_EQ(ms, 15 * 60000);
    ASSERT_TRUE(parse_duration_ms("1h", ms));
    EXPECT_EQ(ms, 3600000);
    ASSERT_TRUE(parse_duration_ms("7d", ms));
    EXPECT_EQ(ms, 7LL * 86400000);
    ASSERT_TRUE(parse_duration_ms("0s", ms));
    EXPECT_EQ(ms, 0);
}

TEST(ConfigDuration, RejectsBadText) {
    for (const char* text : {"", "h", "10", "-1h", "+1h", "1.5h", "1w", "1hh", " 1h", "1h ", "1H", "1h30m",
                             "9223372036854775808ms", "106751991167301d", "99999999999999999999s"}) {
        std::int64_t ms = 42;
        EXPECT_FALSE(parse_duration_ms(text, ms)) << text;
        EXPECT_EQ(ms, 42) << "unchanged on failure: " << text;
    }
    std::int64_t ms = 0;
    EXPECT_TRUE(parse_duration_ms("9223372036854775807ms", ms));
    EXPECT_EQ(ms, INT64_MAX);
}

TEST(ConfigLoader, EnvironmentSubstitution) {
    ::setenv("SLUICE_TEST_PG_DSN", "host=db dbname=prod", 1);
    ::setenv("SLUICE_TEST_PREFIX", "pre", 1);
    ::setenv("SLUICE_TEST_PORT", "6390", 1);
    ::setenv("SLUICE_TEST_EMPTY", "", 1);
    const auto r = load_config_text(with_set(
        "", R"("postgres": {"dsn": "${SLUICE_TEST_PG_DSN}"},
               "redis": {"key_prefix": "${SLUICE_TEST_PREFIX}-x-${SLUICE_TEST_PREFIX}", "port": "${SLUICE_TEST_PORT}",
                         "password": "${SLUICE_TEST_EMPTY}"},
               "kafka": {"dead_letter_topic": "lit$${SLUICE_TEST_PREFIX}$x", "properties": {"client.id": "${SLUICE_TEST_PREFIX}"}})"));
    ASSERT_TRUE(r.ok()) << all_errors(r);
    EXPECT_EQ(r.cfg.postgres->dsn, "host=db dbname=prod");
    EXPECT_EQ(r.cfg.redis->key_prefix, "pre-x-pre");
    EXPECT_EQ(r.cfg.redis->port, 6390);  // a number may come from the environment
    EXPECT_EQ(r.cfg.redis->password, "");
    EXPECT_EQ(r.cfg.kafka.dead_letter_topic, "lit${SLUICE_TEST_PREFIX}$x");  // $${ escapes
    EXPECT_EQ(r.cfg.kafka.properties.at("client.id"), "pre");
    ::unsetenv("SLUICE_TEST_PG_DSN");
    ::unsetenv("SLUICE_TEST_PREFIX");
    ::unsetenv("SLUICE_TEST_PORT");
    ::unsetenv("SLUICE_TEST_EMPTY");
}

TEST(ConfigLoader, UnsetEnvironmentVariableNamesPathAndVariable) {
    ::unsetenv("SLUICE_TEST_UNSET_DSN");
    ::unsetenv("SLUICE_TEST_UNSET_HASH");
    ::setenv("SLUICE_TEST_NOT_A_NUMBER", "many", 1);
    const auto r = load_config_text(with_set(
        "", R"("postgres": {"dsn": "${SLUICE_TEST_UNSET_DSN}"},
               "http": {"threads": "${SLUICE_TEST_NOT_A_NUMBER}",
                        "auth": {"api_keys": [{"name": "a", "sha256": "${SLUICE_TEST_UNSET_HASH}", "scopes": ["read"]}]}},
               "log": {"level": "${unterminated", "format": "${bad-name}"})"));
    EXPECT_TRUE(has_error(r, "postgres.dsn", "environment variable SLUICE_TEST_UNSET_DSN is not set"));
    EXPECT_TRUE(has_error(r, "http.auth.api_keys[0].sha256", "SLUICE_TEST_UNSET_HASH is not set"));
    EXPECT_TRUE(has_error(r, "http.threads", "expected integer, got string"));
    EXPECT_TRUE(has_error(r, "log.level", "unterminated \"${\""));
    EXPECT_TRUE(has_error(r, "log.format", "invalid environment variable name \"bad-name\""));
    // Only the substitution is reported for a string that could not be expanded.
    EXPECT_EQ(r.errors.size(), 5u) << all_errors(r);
    ::unsetenv("SLUICE_TEST_NOT_A_NUMBER");
}

TEST(ConfigLoader, KafkaProperties) {
    const auto r = load_config_text(with_set("", R"("kafka": {"properties": {"a": {"b": 1}, "c": [1], "d": null}})"));
    EXPECT_TRUE(has_error(r, "kafka.properties.a", "expected string, number or boolean, got object"));
    EXPECT_TRUE(has_error(r, "kafka.properties.c", "got array"));
    EXPECT_TRUE(has_error(r, "kafka.properties.d", "got null"));
    const auto dotted = load_config_text(with_set("", R"("kafka": {"properties": {"socket.timeout.ms": {}}})"));
    EXPECT_TRUE(has_error(dotted, R"(kafka.properties["socket.timeout.ms"])", "got object"));
}

TEST(ConfigLoader, DeadLetterTopicMustNotFeedASet) {
    const auto r = load_config_text(with_set("", R"("kafka": {"dead_letter_topic": "user-events"})"));
    EXPECT_TRUE(has_error(r, "kafka.dead_letter_topic", "must not be a feature set's topic"));
}

TEST(ConfigLoader, ListenAddress) {
    for (const char* good : {"0.0.0.0:8080", "localhost:0", "[::1]:8080", "[::]:65535"}) {
        const auto r = load_config_text(with_set("", std::string(R"("http": {"listen": ")") + good + "\"}"));
        EXPECT_TRUE(r.ok()) << good << "\n" << all_errors(r);
    }
    for (const char* bad : {"8080", ":8080", "host:", "host:http", "::1:8080", "[::1]8080", "host:123456"}) {
        const auto r = load_config_text(with_set("", std::string(R"("http": {"listen": ")") + bad + "\"}"));
        EXPECT_TRUE(has_error(r, "http.listen", "expected \"host:port\"")) << bad;
    }
    const auto r = load_config_text(with_set("", R"("http": {"listen": "0.0.0.0:70000"})"));
    EXPECT_TRUE(has_error(r, "http.listen", "port must be between 0 and 65535, got 70000"));
}

TEST(ConfigLoader, ApiKeys) {
    const auto r = load_config_text(with_set("", R"("http": {"auth": {"api_keys": [
        {"name": "a", "sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", "scopes": []},
        {"name": "", "sha256": "abc", "scopes": ["read", "delete", 3]},
        {"name": "c", "sha256": "zz26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", "scopes": ["admin"]}
      ]}, "api_keys": []})"));
    EXPECT_TRUE(has_error(r, "http.auth.api_keys[0].scopes", "at least one scope"));
    EXPECT_TRUE(has_error(r, "http.auth.api_keys[1].name", "must not be empty"));
    EXPECT_TRUE(has_error(r, "http.auth.api_keys[1].sha256", "64 hexadecimal characters, got 3 characters"));
    EXPECT_TRUE(has_error(r, "http.auth.api_keys[1].scopes[1]", "must be one of read, write, admin; got \"delete\""));
    EXPECT_TRUE(has_error(r, "http.auth.api_keys[1].scopes[2]", "expected string, got integer"));
    EXPECT_TRUE(has_error(r, "http.auth.api_keys[2].sha256", "not all hexadecimal"));
    EXPECT_TRUE(has_error(r, "http.api_keys", "unknown key"));
    EXPECT_EQ(r.errors.size(), 7u) << all_errors(r);
}

TEST(ConfigLoader, LogLevelsAndFormats) {
    const auto r = load_config_text(with_set("", R"("log": {"level": "warning", "format": "yaml"})"));
    EXPECT_TRUE(
        has_error(r, "log.level", "must be one of trace, debug, info, warn, error, critical, off; got \"warning\""));
    EXPECT_TRUE(has_error(r, "log.level", "did you mean \"warn\"?"));
    EXPECT_TRUE(has_error(r, "log.format", "must be one of text, json"));
}

TEST(ConfigLoader, EveryErrorIsReportedInFileOrder) {
    const auto r = load_config_text(R"({
      "kafka": {"consumer_thread": 2, "poll_timeout_ms": 0},
      "feature_sets": [ {"name": "Bad", "topic": "t", "key": "k", "event_time": "ts",
                         "fields": {"spend": {"type": "double", "min": 5, "max": 1}}, "ttl": "1y"} ],
      "pipeline": {"queue_capacity": 3},
      "http": {"threads": "2"}
    })");
    ASSERT_EQ(r.errors.size(), 7u) << all_errors(r);
    EXPECT_EQ(format_errors(r.errors),
              "kafka.consumer_thread: unknown key (did you mean \"consumer_threads\"?)\n"
              "kafka.poll_timeout_ms: must be between 1 and 1000, got 0\n"
              "feature_sets[0].name: must be an identifier (lowercase letters, digits and _, not starting with a "
              "digit, at most 48 characters), got \"Bad\"\n"
              "feature_sets[0].fields.spend.min: must not be greater than max (1), got 5\n"
              "feature_sets[0].ttl: invalid duration \"1y\": use a whole number and a unit ms, s, m, h or d, e.g. "
              "\"24h\", or \"0\" for never\n"
              "pipeline.queue_capacity: must be between 16 and 16777216, got 3\n"
              "http.threads: expected integer, got string\n");
}

TEST(ConfigLoader, FormatErrorsOmitsAnEmptyPath) {
    EXPECT_EQ(format_errors({{"", "cannot read"}, {"a.b", "bad"}}), "cannot read\na.b: bad\n");
    EXPECT_EQ(format_errors({}), "");
}

TEST(ConfigLoader, LoadsAFile) {
    const std::filesystem::path file =
        std::filesystem::temp_directory_path() / ("sluice_config_test_" + std::to_string(::getpid()) + ".json");
    {
        std::ofstream out(file);
        out << "// from a file\n" << with_set("", R"("log": {"format": "json"})");
    }
    const auto r = load_config_file(file.string());
    std::filesystem::remove(file);
    ASSERT_TRUE(r.ok()) << all_errors(r);
    EXPECT_EQ(r.cfg.log.format, "json");
    EXPECT_EQ(r.cfg.feature_sets[0].name, "user_activity");
}

TEST(ConfigLoader, UnreadableFileIsOneErrorNamingTheFile) {
    const auto missing = load_config_file("/nonexistent/sluice.json");
    ASSERT_EQ(missing.errors.size(), 1u) << all_errors(missing);
    EXPECT_EQ(missing.errors[0].path, "");
    EXPECT_NE(missing.errors[0].message.find("/nonexistent/sluice.json"), std::string::npos);
    EXPECT_NE(missing.errors[0].message.find("No such file or directory"), std::string::npos)
        << missing.errors[0].message;

    const auto directory = load_config_file(std::filesystem::temp_directory_path().string());
    ASSERT_EQ(directory.errors.size(), 1u) << all_errors(directory);
    EXPECT_NE(directory.errors[0].message.find("Is a directory"), std::string::npos) << directory.errors[0].message;
}

}  // namespace
}  // namespace sluice
