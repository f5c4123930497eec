// Tests of reading feature sets: fields (types, defaults, bounds, sources, allowed values),
// aggregations, transforms and dedup, as a user sees them in a config file.

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <variant>

#include "config_test_support.hpp"
#include "sluice/config/loader.hpp"

namespace sluice {
namespace {

using testing_support::all_errors;
using testing_support::has_error;
using testing_support::with_set;

TEST(ConfigLoader, BadFieldType) {
    const auto r = load_config_text(with_set(R"("fields": {"clicks": {"type": "integer", "default": 1}})"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].fields.clicks.type",
                          "must be one of int, double, bool, string, timestamp, json; got \"integer\""));
    // With the type unknown the default cannot be judged; no second, confusing error.
    EXPECT_EQ(r.errors.size(), 1u) << all_errors(r);
}

TEST(ConfigLoader, DefaultMustFitTheType) {
    const auto r = load_config_text(with_set(R"("fields": {
        "a": {"type": "int", "default": "7"},
        "b": {"type": "int", "default": 1.5},
        "c": {"type": "double", "default": true},
        "d": {"type": "bool", "default": "yes"},
        "e": {"type": "string", "default": 5},
        "f": {"type": "timestamp", "default": "yesterday"},
        "g": {"type": "timestamp", "default": -1},
        "h": {"type": "json", "default": [1, {"x": "y"}]},
        "i": {"type": "double", "default": 3},
        "j": {"type": "string", "default": null}})"));
    EXPECT_TRUE(
        has_error(r, "feature_sets[0].fields.a.default", "must be a 64-bit integer (the field is int), got \"7\""));
    EXPECT_TRUE(has_error(r, "feature_sets[0].fields.b.default", "got 1.5"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].fields.c.default", "(the field is double)"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].fields.d.default", "(the field is bool)"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].fields.e.default", "(the field is string)"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].fields.f.default", "RFC 3339"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].fields.g.default", "RFC 3339"));
    EXPECT_EQ(r.errors.size(), 7u) << all_errors(r);
    const auto& fields = r.cfg.feature_sets[0].fields;
    EXPECT_EQ(std::get<std::string>(fields[7].default_value), R"([1,{"x":"y"}])");
    EXPECT_DOUBLE_EQ(std::get<double>(fields[8].default_value), 3.0);
    EXPECT_TRUE(std::holds_alternative<std::monostate>(fields[9].default_value));
}

TEST(ConfigLoader, MinAndMax) {
    const auto r = load_config_text(with_set(R"("fields": {
        "a": {"type": "int", "min": 10, "max": 5},
        "b": {"type": "double", "min": 0, "default": -1},
        "c": {"type": "int", "max": 100, "default": 101},
        "d": {"type": "int", "min": 0, "max": 10, "default": 11},
        "e": {"type": "string", "min": 1},
        "f": {"type": "double", "min": "0"},
        "g": {"type": "double", "min": -1.5, "max": 1.5, "default": 0.5}})"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].fields.a.min", "must not be greater than max (5), got 10"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].fields.b.default", "must be >= min (0), got -1"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].fields.c.default", "must be <= max (100), got 101"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].fields.d.default", "must be between min and max (0 and 10), got 11"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].fields.e.min", "only int and double fields can have min"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].fields.f.min", "expected number, got string"));
    EXPECT_FALSE(has_error(r, "feature_sets[0].fields.g.default"));
    EXPECT_EQ(r.errors.size(), 6u) << all_errors(r);
}

// Fields used by the aggregation tests: one of each type an aggregation may or may not read.
const char* const agg_fields =
    R"("fields": {"clicks": {"type": "int"}, "spend": {"type": "double"}, "country": {"type": "string"},
                  "premium": {"type": "bool"}, "seen": {"type": "timestamp"}, "ctx": {"type": "json"}})";

config_load_result with_aggregations(const std::string& list, const std::string& more = "") {
    return load_config_text(
        with_set(std::string(agg_fields) + R"(, "aggregations": [)" + list + "]" + (more.empty() ? "" : ", " + more)));
}

TEST(ConfigAggregations, EveryOpAndWindowIsRead) {
    const auto r = with_aggregations(R"(
        {"name": "spend_sum_1h", "field": "spend", "op": "sum", "window": "1h"},
        {"name": "clicks_count_7d", "field": "clicks", "op": "count", "window": "7d"},
        {"name": "spend_avg_30m", "field": "spend", "op": "avg", "window": "30m"},
        {"name": "clicks_min_1m", "field": "clicks", "op": "min", "window": "1m"},
        {"name": "clicks_max_30d", "field": "clicks", "op": "max", "window": "30d"},
        {"name": "country_last_1d", "field": "country", "op": "last", "window": "1d"},
        {"name": "ctx_count", "field": "ctx", "op": "count", "window": "90m"},
        {"name": "premium_last", "field": "premium", "op": "last", "window": "3600s"})");
    ASSERT_TRUE(r.ok()) << all_errors(r);
    const auto& a = r.cfg.feature_sets[0].aggregations;
    ASSERT_EQ(a.size(), 8u);
    EXPECT_EQ(a[0].name, "spend_sum_1h");
    EXPECT_EQ(a[0].field, "spend");
    EXPECT_EQ(a[0].field_index, 1u);
    EXPECT_EQ(a[0].op, agg_op::sum);
    EXPECT_EQ(a[0].window_ms, 3600000);
    EXPECT_EQ(a[1].op, agg_op::count);
    EXPECT_EQ(a[1].field_index, 0u);
    EXPECT_EQ(a[1].window_ms, 7LL * 86400000);
    EXPECT_EQ(a[2].op, agg_op::avg);
    EXPECT_EQ(a[3].op, agg_op::min);
    EXPECT_EQ(a[3].window_ms, 60000);  // the shortest window
    EXPECT_EQ(a[4].op, agg_op::max);
    EXPECT_EQ(a[4].window_ms, 30LL * 86400000);  // the longest
    EXPECT_EQ(a[5].op, agg_op::last);
    EXPECT_EQ(a[5].field_index, 2u);
    EXPECT_EQ(a[6].field_index, 5u);  // count reads any field, even json
    EXPECT_EQ(a[6].window_ms, 90LL * 60000);
    EXPECT_EQ(a[7].field_index, 3u);     // last too
    EXPECT_EQ(a[7].window_ms, 3600000);  // any unit that makes whole minutes
}

TEST(ConfigAggregations, FieldsMayComeAfterTheAggregations) {
    const auto r = load_config_text(with_set(
        R"("aggregations": [{"name": "spend_sum_1h", "field": "spend", "op": "sum", "window": "1h"}],
           "fields": {"clicks": {"type": "int"}, "spend": {"type": "double"}})"));
    ASSERT_TRUE(r.ok()) << all_errors(r);
    EXPECT_EQ(r.cfg.feature_sets[0].aggregations[0].field_index, 1u);
}

TEST(ConfigAggregations, NoneByDefault) {
    const auto r = load_config_text(with_set(""));
    ASSERT_TRUE(r.ok()) << all_errors(r);
    EXPECT_TRUE(r.cfg.feature_sets[0].aggregations.empty());
    EXPECT_EQ(r.cfg.feature_sets[0].allowed_lateness_ms, 3600000);
    const auto empty = with_aggregations("");
    ASSERT_TRUE(empty.ok()) << all_errors(empty);
}

TEST(ConfigAggregations, EveryKeyIsRequired) {
    const auto r = with_aggregations("{}");
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[0].name", "required key is missing"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[0].field", "required key is missing"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[0].op", "required key is missing"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[0].window", "required key is missing"));
    EXPECT_EQ(r.errors.size(), 4u) << all_errors(r);
}

TEST(ConfigAggregations, WrongShapes) {
    const auto r = load_config_text(with_set(R"("aggregations": {"name": "x"})"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations", "expected array, got object"));
    const auto element = with_aggregations(R"("spend_sum_1h", {"name": 5, "field": "spend", "op": "sum",
                                               "window": 60000, "every": "1m"})");
    EXPECT_TRUE(has_error(element, "feature_sets[0].aggregations[0]", "expected object, got string"));
    EXPECT_TRUE(has_error(element, "feature_sets[0].aggregations[1].name", "expected string, got integer"));
    EXPECT_TRUE(has_error(element, "feature_sets[0].aggregations[1].window", "expected string, got integer"));
    EXPECT_TRUE(has_error(element, "feature_sets[0].aggregations[1].every", "unknown key"));
}

TEST(ConfigAggregations, NameMustBeAnIdentifier) {
    const auto r = with_aggregations(R"({"name": "Spend-Sum", "field": "spend", "op": "sum", "window": "1h"},
                                        {"name": "", "field": "spend", "op": "sum", "window": "1h"})");
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[0].name", "must be an identifier"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[1].name", "must be an identifier"));
    EXPECT_EQ(r.errors.size(), 2u) << all_errors(r);
}

TEST(ConfigAggregations, NameIsUniqueAmongFieldsAndAggregations) {
    const auto r = with_aggregations(R"(
        {"name": "spend_sum", "field": "spend", "op": "sum", "window": "1h"},
        {"name": "spend_sum", "field": "spend", "op": "sum", "window": "2h"},
        {"name": "clicks", "field": "clicks", "op": "count", "window": "1h"},
        {"name": "event_time", "field": "clicks", "op": "count", "window": "1h"},
        {"name": "src_offset", "field": "clicks", "op": "count", "window": "1h"})");
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[1].name",
                          "duplicate aggregation name \"spend_sum\" (also feature_sets[0].aggregations[0])"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[2].name", "\"clicks\" is already a field"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[3].name", "reserved column name"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[4].name", "reserved column name"));
    EXPECT_EQ(r.errors.size(), 4u) << all_errors(r);
}

TEST(ConfigAggregations, FieldMustBeDeclared) {
    const auto r = with_aggregations(R"({"name": "a", "field": "spent", "op": "sum", "window": "1h"},
                                        {"name": "b", "field": "user_id", "op": "count", "window": "1h"},
                                        {"name": "c", "field": "", "op": "count", "window": "1h"})");
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[0].field",
                          "\"spent\" is not a declared field of this feature set (did you mean \"spend\"?)"));
    // The key is not a field: there is one per event and key, counting it is counting events.
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[1].field", "not a declared field"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[2].field", "must not be empty"));
    EXPECT_EQ(r.errors.size(), 3u) << all_errors(r);
}

TEST(ConfigAggregations, ABadFieldIsReportedOnce) {
    // The field's own error is enough; the aggregation reading it does not add a second one.
    const auto r = load_config_text(with_set(R"("fields": {"spend": {"type": "decimal"}, "Bad": {"type": "int"}},
        "aggregations": [{"name": "a", "field": "spend", "op": "sum", "window": "1h"},
                         {"name": "b", "field": "Bad", "op": "sum", "window": "1h"}])"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].fields.spend.type", "must be one of"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].fields.Bad", "must be an identifier"));
    EXPECT_EQ(r.errors.size(), 2u) << all_errors(r);
}

TEST(ConfigAggregations, NumericOpsNeedIntOrDouble) {
    const auto r = with_aggregations(R"(
        {"name": "a", "field": "country", "op": "sum", "window": "1h"},
        {"name": "b", "field": "premium", "op": "avg", "window": "1h"},
        {"name": "c", "field": "seen", "op": "min", "window": "1h"},
        {"name": "d", "field": "ctx", "op": "max", "window": "1h"},
        {"name": "e", "field": "clicks", "op": "sum", "window": "1h"},
        {"name": "f", "field": "spend", "op": "max", "window": "1h"},
        {"name": "g", "field": "seen", "op": "last", "window": "1h"},
        {"name": "h", "field": "country", "op": "count", "window": "1h"})");
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[0].field",
                          "sum needs an int or double field; \"country\" is string (count and last accept any field)"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[1].field", "avg needs an int or double field"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[2].field", "\"seen\" is timestamp"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[3].field", "\"ctx\" is json"));
    EXPECT_EQ(r.errors.size(), 4u) << all_errors(r);
}

TEST(ConfigAggregations, UnknownOp) {
    const auto r = with_aggregations(R"({"name": "a", "field": "country", "op": "summ", "window": "1h"},
                                        {"name": "b", "field": "spend", "op": "median", "window": "1h"})");
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[0].op",
                          "must be one of count, sum, avg, min, max, last; got \"summ\" (did you mean \"sum\"?)"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[1].op", "got \"median\""));
    // With the op unknown, the field's type cannot be judged: no second error.
    EXPECT_EQ(r.errors.size(), 2u) << all_errors(r);
}

TEST(ConfigAggregations, WindowBounds) {
    const auto r = with_aggregations(R"(
        {"name": "a", "field": "spend", "op": "sum", "window": "59s"},
        {"name": "b", "field": "spend", "op": "sum", "window": "31d"},
        {"name": "c", "field": "spend", "op": "sum", "window": "90s"},
        {"name": "d", "field": "spend", "op": "sum", "window": "60001ms"},
        {"name": "e", "field": "spend", "op": "sum", "window": "1 hour"},
        {"name": "f", "field": "spend", "op": "sum", "window": "0"},
        {"name": "g", "field": "spend", "op": "sum", "window": "720h"},
        {"name": "h", "field": "spend", "op": "sum", "window": "60000ms"},
        {"name": "i", "field": "spend", "op": "sum", "window": "43201m"})");
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[0].window", "must be between 1m and 30d, got \"59s\""));
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[1].window", "must be between 1m and 30d, got \"31d\""));
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[2].window", "must be a whole number of minutes"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[3].window", "got \"60001ms\""));
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[4].window", "invalid duration \"1 hour\""));
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[5].window", "must be between 1m and 30d, got \"0\""));
    EXPECT_TRUE(has_error(r, "feature_sets[0].aggregations[8].window", "must be between 1m and 30d"));
    EXPECT_EQ(r.errors.size(), 7u) << all_errors(r);
    EXPECT_EQ(r.cfg.feature_sets[0].aggregations[6].window_ms, 30LL * 86400000);
    EXPECT_EQ(r.cfg.feature_sets[0].aggregations[7].window_ms, 60000);
}

TEST(ConfigAggregations, AtMost64PerSet) {
    std::string list;
    for (int i = 0; i < 65; ++i)
        list += std::string(i ? "," : "") + R"({"name": "a)" + std::to_string(i) +
                R"(", "field": "spend", "op": "sum", "window": "1h"})";
    EXPECT_TRUE(has_error(with_aggregations(list), "feature_sets[0].aggregations", "at most 64 aggregations"));
    const auto sixty_four = with_aggregations(list.substr(0, list.rfind(",{")));
    ASSERT_TRUE(sixty_four.ok()) << all_errors(sixty_four);
    EXPECT_EQ(sixty_four.cfg.feature_sets[0].aggregations.size(), 64u);
}

TEST(ConfigAggregations, AllowedLateness) {
    const auto r = load_config_text(with_set(R"("allowed_lateness": "15m")"));
    ASSERT_TRUE(r.ok()) << all_errors(r);
    EXPECT_EQ(r.cfg.feature_sets[0].allowed_lateness_ms, 15LL * 60000);
    const auto zero = load_config_text(with_set(R"("allowed_lateness": "0")"));
    ASSERT_TRUE(zero.ok()) << all_errors(zero);
    EXPECT_EQ(zero.cfg.feature_sets[0].allowed_lateness_ms, 0);
    const auto most = load_config_text(with_set(R"("allowed_lateness": "30d")"));
    ASSERT_TRUE(most.ok()) << all_errors(most);
    EXPECT_EQ(most.cfg.feature_sets[0].allowed_lateness_ms, 30LL * 86400000);

    EXPECT_TRUE(has_error(load_config_text(with_set(R"("allowed_lateness": "31d")")),
                          "feature_sets[0].allowed_lateness", "must be between 0 and 30d, got \"31d\""));
    EXPECT_TRUE(has_error(load_config_text(with_set(R"("allowed_lateness": "-1h")")),
                          "feature_sets[0].allowed_lateness", "invalid duration \"-1h\""));
    EXPECT_TRUE(has_error(load_config_text(with_set(R"("allowed_lateness": 3600)")), "feature_sets[0].allowed_lateness",
                          "expected string, got integer"));
}

TEST(ConfigSchema, SourceIsAJsonPointerDefaultingToTheFieldName) {
    const auto r = load_config_text(with_set(R"("fields": {
        "os": {"type": "string", "source": "/device/os"},
        "first_tag": {"type": "string", "source": "/tags/0"},
        "odd": {"type": "int", "source": "/a~1b/c~0d"},
        "plain": {"type": "int"}})"));
    ASSERT_TRUE(r.ok()) << all_errors(r);
    const auto& f = r.cfg.feature_sets[0].fields;
    EXPECT_EQ(f[0].source, "/device/os");
    EXPECT_EQ(f[1].source, "/tags/0");
    EXPECT_EQ(f[2].source, "/a~1b/c~0d");
    EXPECT_EQ(f[3].source, "/plain");

    const auto bad = load_config_text(with_set(R"("fields": {
        "a": {"type": "string", "source": "device/os"},
        "b": {"type": "string", "source": "/x~2"},
        "c": {"type": "string", "source": ""},
        "d": {"type": "string", "source": 5}})"));
    EXPECT_TRUE(has_error(bad, "feature_sets[0].fields.a.source", "must be a JSON pointer starting with \"/\""));
    EXPECT_TRUE(has_error(bad, "feature_sets[0].fields.b.source", "\"~\" must be followed by 0 or 1"));
    EXPECT_TRUE(has_error(bad, "feature_sets[0].fields.c.source", "must be a JSON pointer"));
    EXPECT_TRUE(has_error(bad, "feature_sets[0].fields.d.source", "expected string, got integer"));
    EXPECT_EQ(bad.errors.size(), 4u) << all_errors(bad);
}

TEST(ConfigSchema, KeyAndEventTimeMayBeJsonPointers) {
    const auto r = load_config_text(R"({"feature_sets": [{"name": "a", "topic": "t", "key": "/user/id",
                                        "event_time": "/meta/ts"}]})");
    ASSERT_TRUE(r.ok()) << all_errors(r);
    EXPECT_EQ(r.cfg.feature_sets[0].key_field, "/user/id");
    EXPECT_EQ(r.cfg.feature_sets[0].event_time_field, "/meta/ts");
    // Without the leading "/" it is one member name, whatever it contains.
    const auto plain = load_config_text(R"({"feature_sets": [{"name": "a", "topic": "t", "key": "user.id~x",
                                            "event_time": "ts"}]})");
    ASSERT_TRUE(plain.ok()) << all_errors(plain);

    const auto bad = load_config_text(R"({"feature_sets": [{"name": "a", "topic": "t", "key": "/user~",
                                          "event_time": ""}]})");
    EXPECT_TRUE(has_error(bad, "feature_sets[0].key", "invalid JSON pointer \"/user~\""));
    EXPECT_TRUE(has_error(bad, "feature_sets[0].event_time", "must not be empty"));
}

TEST(ConfigSchema, EventTimeFallback) {
    EXPECT_EQ(load_config_text(with_set("")).cfg.feature_sets[0].event_time_fallback, time_fallback::none);
    const auto r = load_config_text(with_set(R"("event_time_fallback": "kafka_timestamp")"));
    ASSERT_TRUE(r.ok()) << all_errors(r);
    EXPECT_EQ(r.cfg.feature_sets[0].event_time_fallback, time_fallback::kafka_timestamp);
    const auto none = load_config_text(with_set(R"("event_time_fallback": "none")"));
    ASSERT_TRUE(none.ok()) << all_errors(none);
    EXPECT_EQ(none.cfg.feature_sets[0].event_time_fallback, time_fallback::none);

    const auto bad = load_config_text(with_set(R"("event_time_fallback": "kafka")"));
    EXPECT_TRUE(has_error(bad, "feature_sets[0].event_time_fallback",
                          "must be one of none, kafka_timestamp; got \"kafka\" (did you mean \"kafka_timestamp\"?)"));
}

TEST(ConfigSchema, AllowedValues) {
    const auto r = load_config_text(with_set(R"("fields": {
        "country": {"type": "string", "allowed": ["DE", "US"], "default": "DE"},
        "tier": {"type": "int", "allowed": [1, 2, 3]}})"));
    ASSERT_TRUE(r.ok()) << all_errors(r);
    const auto& f = r.cfg.feature_sets[0].fields;
    EXPECT_EQ(f[0].allowed, (std::vector<value>{std::string("DE"), std::string("US")}));
    EXPECT_EQ(f[1].allowed, (std::vector<value>{std::int64_t{1}, std::int64_t{2}, std::int64_t{3}}));

    const auto bad = load_config_text(with_set(R"("fields": {
        "a": {"type": "double", "allowed": [1.5]},
        "b": {"type": "bool", "allowed": [true]},
        "c": {"type": "string", "allowed": []},
        "d": {"type": "string", "allowed": ["x", 5]},
        "e": {"type": "int", "allowed": [1, 2.5, "3"]},
        "f": {"type": "string", "allowed": ["DE", "US"], "default": "FR"},
        "g": {"type": "int", "allowed": 5}})"));
    EXPECT_TRUE(has_error(bad, "feature_sets[0].fields.a.allowed",
                          "only string and int fields can have allowed values (the field is double)"));
    EXPECT_TRUE(has_error(bad, "feature_sets[0].fields.b.allowed", "(the field is bool)"));
    EXPECT_TRUE(has_error(bad, "feature_sets[0].fields.c.allowed", "must list between 1 and 1024 values, got 0"));
    EXPECT_TRUE(has_error(bad, "feature_sets[0].fields.d.allowed[1]", "must be a string (the field is string), got 5"));
    EXPECT_TRUE(has_error(bad, "feature_sets[0].fields.e.allowed[1]", "must be a 64-bit integer"));
    EXPECT_TRUE(has_error(bad, "feature_sets[0].fields.e.allowed[2]", "got \"3\""));
    EXPECT_TRUE(has_error(bad, "feature_sets[0].fields.f.default", "must be one of the allowed values, got \"FR\""));
    EXPECT_TRUE(has_error(bad, "feature_sets[0].fields.g.allowed", "expected array, got integer"));
    EXPECT_EQ(bad.errors.size(), 8u) << all_errors(bad);
}

TEST(ConfigSchema, TimestampDefaultsFollowTheEventTimeRule) {
    // Numbers below 10^11 are epoch seconds (with a fraction), larger ones epoch milliseconds.
    const auto r = load_config_text(with_set(R"("fields": {
        "a": {"type": "timestamp", "default": 1795255200},
        "b": {"type": "timestamp", "default": 1795255200.25},
        "c": {"type": "timestamp", "default": 1795255200123},
        "d": {"type": "timestamp", "default": "1795255200"}})"));
    ASSERT_TRUE(r.ok()) << all_errors(r);
    const auto& f = r.cfg.feature_sets[0].fields;
    EXPECT_EQ(std::get<std::int64_t>(f[0].default_value), 1795255200000);
    EXPECT_EQ(std::get<std::int64_t>(f[1].default_value), 1795255200250);
    EXPECT_EQ(std::get<std::int64_t>(f[2].default_value), 1795255200123);
    EXPECT_EQ(std::get<std::int64_t>(f[3].default_value), 1795255200000);
    const auto bad = load_config_text(with_set(R"("fields": {
        "a": {"type": "timestamp", "default": 1795255200123.5},
        "b": {"type": "timestamp", "default": 253402300800000}})"));
    EXPECT_TRUE(has_error(bad, "feature_sets[0].fields.a.default", "epoch seconds or milliseconds"));
    EXPECT_TRUE(has_error(bad, "feature_sets[0].fields.b.default", "years 1970..9999"));
}

// Fields used by the transform tests.
const char* const transform_fields =
    R"("fields": {"clicks": {"type": "int"}, "spend": {"type": "double"}, "country": {"type": "string"},
                  "email": {"type": "string"}, "premium": {"type": "bool"}, "seen": {"type": "timestamp"},
                  "ctx": {"type": "json"}, "must": {"type": "int", "required": true}})";

config_load_result with_transforms(const std::string& list, const std::string& more = "") {
    return load_config_text(with_set(std::string(transform_fields) + R"(, "transforms": [)" + list + "]" +
                                     (more.empty() ? "" : ", " + more)));
}

TEST(ConfigTransforms, EveryOpIsRead) {
    const auto r = with_transforms(R"(
        {"op": "rename", "from": "amt", "to": "spend"},
        {"op": "cast", "field": "clicks", "to": "int"},
        {"op": "default", "field": "country", "value": "??"},
        {"op": "clamp", "field": "clicks", "min": 0, "max": 100},
        {"op": "clamp", "field": "spend", "max": 2.5},
        {"op": "lower", "field": "country"},
        {"op": "upper", "field": "country"},
        {"op": "trim", "field": "email"},
        {"op": "hash", "field": "email", "salt": "pepper"},
        {"op": "drop", "field": "premium"},
        {"op": "filter", "field": "country", "in": ["DE", "US", null]},
        {"op": "filter", "field": "spend", "gte": 1},
        {"op": "filter", "field": "seen", "lt": "2030-01-01T00:00:00Z"},
        {"op": "filter", "field": "premium", "equals": true},
        {"op": "filter", "field": "clicks", "not_equals": null})");
    ASSERT_TRUE(r.ok()) << all_errors(r);
    const auto& t = r.cfg.feature_sets[0].transforms;
    ASSERT_EQ(t.size(), 15u);
    EXPECT_EQ(t[0].op, transform_op::rename);
    EXPECT_EQ(t[0].from, "amt");
    EXPECT_EQ(t[0].to, "spend");
    EXPECT_EQ(t[1].op, transform_op::cast);
    EXPECT_EQ(t[1].cast_to, field_type::int64);
    EXPECT_EQ(t[1].field_index, 0u);
    EXPECT_EQ(t[2].op, transform_op::set_default);
    EXPECT_EQ(t[2].default_value, value{std::string("??")});
    EXPECT_EQ(t[3].op, transform_op::clamp);
    EXPECT_EQ(t[3].clamp_min, value{std::int64_t{0}});
    EXPECT_EQ(t[3].clamp_max, value{std::int64_t{100}});
    EXPECT_EQ(t[4].clamp_min, value{});
    EXPECT_EQ(t[4].clamp_max, value{2.5});
    EXPECT_EQ(t[5].op, transform_op::lower);
    EXPECT_EQ(t[6].op, transform_op::upper);
    EXPECT_EQ(t[7].op, transform_op::trim);
    EXPECT_EQ(t[8].op, transform_op::hash);
    EXPECT_EQ(t[8].salt, "pepper");
    EXPECT_EQ(t[9].op, transform_op::drop);
    EXPECT_EQ(t[9].field_index, 4u);
    EXPECT_EQ(t[10].op, transform_op::filter);
    EXPECT_EQ(t[10].condition, filter_op::in);
    EXPECT_EQ(t[10].operands, (std::vector<value>{std::string("DE"), std::string("US"), value{}}));
    EXPECT_EQ(t[11].condition, filter_op::gte);
    EXPECT_EQ(t[11].operands, std::vector<value>{value{1.0}});  // the field is double
    EXPECT_EQ(t[12].condition, filter_op::lt);
    EXPECT_EQ(t[12].operands, std::vector<value>{value{std::int64_t{1893456000000}}});
    EXPECT_EQ(t[13].operands, std::vector<value>{value{true}});
    EXPECT_EQ(t[14].condition, filter_op::not_equals);
    EXPECT_EQ(t[14].operands, std::vector<value>{value{}});
}

TEST(ConfigTransforms, NoneByDefault) {
    const auto r = load_config_text(with_set(transform_fields));
    ASSERT_TRUE(r.ok()) << all_errors(r);
    EXPECT_TRUE(r.cfg.feature_sets[0].transforms.empty());
    EXPECT_TRUE(with_transforms("").ok());
}

TEST(ConfigTransforms, OpIsRequiredAndKnown) {
    const auto r = with_transforms(R"({"field": "country"}, {"op": "lowercase", "field": "country"},
                                      {"op": "hashh", "field": "email"}, "lower")");
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[0].op", "required key is missing"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[1].op",
                          "must be one of rename, cast, default, clamp, lower, upper, trim, hash, drop, filter; "
                          "got \"lowercase\" (did you mean \"lower\"?)"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[2].op", "did you mean \"hash\"?"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[3]", "expected object, got string"));
    EXPECT_EQ(r.errors.size(), 4u) << all_errors(r);
    EXPECT_TRUE(has_error(load_config_text(with_set(R"("transforms": {})")), "feature_sets[0].transforms",
                          "expected array, got object"));
}

TEST(ConfigTransforms, KeysBelongToTheirOp) {
    const auto r = with_transforms(R"(
        {"op": "rename", "from": "a"},
        {"op": "lower", "field": "country", "min": 1},
        {"op": "hash", "field": "email", "salt": 5},
        {"op": "clamp", "field": "clicks", "maximum": 5},
        {"op": "lower"},
        {"op": "default", "field": "country"},
        {"op": "cast", "field": "spend"},
        {"op": "upper", "field": 7})");
    EXPECT_TRUE(
        has_error(r, "feature_sets[0].transforms[0].to", "required key is missing (a rename transform needs it)"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[1].min", "not a key of a lower transform (it takes field)"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[2].salt", "expected string, got integer"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[3].maximum", "unknown key (did you mean \"max\"?)"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[3]", "a clamp needs min, max or both"));
    EXPECT_TRUE(
        has_error(r, "feature_sets[0].transforms[4].field", "required key is missing (a lower transform needs it)"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[5].value", "required key is missing"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[6].to", "required key is missing"));
    // A key with a bad value is one error, not also "missing".
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[7].field", "expected string, got integer"));
    EXPECT_EQ(r.errors.size(), 9u) << all_errors(r);
}

TEST(ConfigTransforms, FieldMustBeDeclared) {
    const auto r = with_transforms(R"(
        {"op": "lower", "field": "countri"},
        {"op": "hash", "field": "user_id"},
        {"op": "drop", "field": ""},
        {"op": "filter", "field": "debug", "equals": true})");
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[0].field",
                          "\"countri\" is not a declared field of this feature set (did you mean \"country\"?)"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[1].field", "\"user_id\" is not a declared field"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[2].field", "must not be empty"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[3].field", "\"debug\" is not a declared field"));
    EXPECT_EQ(r.errors.size(), 4u) << all_errors(r);

    // A field with a bad type is reported once, not again by the transform naming it.
    const auto once = load_config_text(with_set(R"("fields": {"country": {"type": "text"}},
                                                  "transforms": [{"op": "lower", "field": "country"}])"));
    EXPECT_EQ(once.errors.size(), 1u) << all_errors(once);
}

TEST(ConfigTransforms, ImpossibleTransformsFailWithTheirPath) {
    const auto r = with_transforms(R"(
        {"op": "hash", "field": "clicks"},
        {"op": "lower", "field": "spend"},
        {"op": "trim", "field": "ctx"},
        {"op": "clamp", "field": "country", "min": 0},
        {"op": "clamp", "field": "clicks", "min": 0.5},
        {"op": "clamp", "field": "spend", "min": 5, "max": 1},
        {"op": "default", "field": "clicks", "value": "many"},
        {"op": "default", "field": "must", "value": 1},
        {"op": "filter", "field": "country", "gt": "M"},
        {"op": "filter", "field": "ctx", "equals": "{}"})");
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[0].field", "hash needs a string field; \"clicks\" is int"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[1].field", "lower needs a string field; \"spend\" is double"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[2].field", "trim needs a string field; \"ctx\" is json"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[3].field", "clamp needs an int or double field"));
    EXPECT_TRUE(
        has_error(r, "feature_sets[0].transforms[4].min", "must be a 64-bit integer (the field is int), got 0.5"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[5].min", "must not be greater than max (1), got 5"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[6].value", "(the field is int), got \"many\""));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[7].field", "\"must\" is required"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[8].field",
                          "filter needs an int, double or timestamp field for gt; \"country\" is string"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[9].field", "filter needs a field that is not json"));
    EXPECT_EQ(r.errors.size(), 10u) << all_errors(r);
}

TEST(ConfigTransforms, CastIsToTheFieldsOwnType) {
    const auto r = with_transforms(R"(
        {"op": "cast", "field": "clicks", "to": "integer"},
        {"op": "cast", "field": "spend", "to": "string"},
        {"op": "cast", "field": "premium", "to": "bool"},
        {"op": "cast", "field": "ctx", "to": "json"})");
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[0].to",
                          "must be one of int, double, bool, string, timestamp, json; got \"integer\""));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[1].to",
                          "cannot cast \"spend\" (double) to string: a field always holds its declared type"));
    EXPECT_TRUE(
        has_error(r, "feature_sets[0].transforms[1].to", "use \"to\": \"double\", or declare the field as string"));
    EXPECT_EQ(r.errors.size(), 2u) << all_errors(r);
}

TEST(ConfigTransforms, FilterConditions) {
    const auto r = with_transforms(R"(
        {"op": "filter", "field": "country"},
        {"op": "filter", "field": "country", "equals": "DE", "not_equals": "US"},
        {"op": "filter", "field": "country", "in": []},
        {"op": "filter", "field": "clicks", "in": [1, "2", 3.5]},
        {"op": "filter", "field": "clicks", "equals": "5"},
        {"op": "filter", "field": "clicks", "gt": "5"},
        {"op": "filter", "field": "seen", "gte": "tomorrow"},
        {"op": "filter", "field": "country", "in": "DE"},
        {"op": "filter", "field": "clicks", "lt": 2.5},
        {"op": "filter", "field": "spend", "lte": 3})");
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[0]", "a filter needs one condition: equals, not_equals"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[1].not_equals",
                          "a filter has one condition; this one already has \"equals\""));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[2].in", "must list at least one value"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[3].in[1]", "(the field is int), got \"2\""));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[3].in[2]", "got 3.5"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[4].equals", "(the field is int)"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[5].gt", "expected number, got string"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[6].gte", "RFC 3339"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[7].in", "expected array, got string"));
    EXPECT_EQ(r.errors.size(), 9u) << all_errors(r);  // transforms[7] has its condition, a bad one: no second error
    // A comparison of an int field with a fraction is fine; the operand stays a double.
    EXPECT_EQ(r.cfg.feature_sets[0].transforms[8].operands, std::vector<value>{value{2.5}});
    EXPECT_EQ(r.cfg.feature_sets[0].transforms[9].operands, std::vector<value>{value{3.0}});
}

TEST(ConfigTransforms, RenameMustFeedSomethingThatIsRead) {
    const auto ok = with_transforms(R"(
        {"op": "rename", "from": "amt", "to": "spend"},
        {"op": "rename", "from": "uid", "to": "user_id"},
        {"op": "rename", "from": "time", "to": "ts"},
        {"op": "rename", "from": "a", "to": "b"},
        {"op": "rename", "from": "b", "to": "clicks"})");
    ASSERT_TRUE(ok.ok()) << all_errors(ok);
    const auto bad = with_transforms(R"(
        {"op": "rename", "from": "amt", "to": "spendd"},
        {"op": "rename", "from": "x", "to": "x"},
        {"op": "rename", "from": "", "to": "spend"},
        {"op": "rename", "from": "y", "to": "zzz"})");
    EXPECT_TRUE(has_error(bad, "feature_sets[0].transforms[0].to",
                          "no field, key or event time reads \"spendd\" (a rename only matters into a member that "
                          "is read) (did you mean \"spend\"?)"));
    EXPECT_TRUE(has_error(bad, "feature_sets[0].transforms[1].to", "is the same as from"));
    EXPECT_TRUE(has_error(bad, "feature_sets[0].transforms[2].from", "must not be empty"));
    EXPECT_TRUE(has_error(bad, "feature_sets[0].transforms[3].to", "no field, key or event time reads \"zzz\""));
    EXPECT_EQ(bad.errors.size(), 4u) << all_errors(bad);

    // A field read through a nested pointer is not fed by a top-level rename.
    const auto nested = load_config_text(with_set(R"("fields": {"os": {"type": "string", "source": "/device/os"}},
                                                    "transforms": [{"op": "rename", "from": "y", "to": "os"}])"));
    EXPECT_TRUE(has_error(nested, "feature_sets[0].transforms[0].to", "no field, key or event time reads \"os\""));
    // A pointer key of one token is a top-level member.
    const auto key = load_config_text(R"({"feature_sets": [{"name": "a", "topic": "t", "key": "/uid",
        "event_time": "ts", "transforms": [{"op": "rename", "from": "user", "to": "uid"}]}]})");
    ASSERT_TRUE(key.ok()) << all_errors(key);
}

TEST(ConfigTransforms, TheFileOrderIsTheOrderTheyRun) {
    const auto r = with_transforms(R"(
        {"op": "lower", "field": "country"},
        {"op": "rename", "from": "amt", "to": "spend"},
        {"op": "filter", "field": "country", "equals": "de"},
        {"op": "upper", "field": "email"},
        {"op": "trim", "field": "country"},
        {"op": "cast", "field": "country", "to": "string"})");
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[1].op",
                          "a rename must come before the other transforms (it renames members of the raw event, "
                          "before anything reads them); move it before feature_sets[0].transforms[0]"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[3].op",
                          "must come before the filters (feature_sets[0].transforms[2]): filters run after every "
                          "other transform"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[4].op", "must come before the filters"));
    EXPECT_TRUE(has_error(r, "feature_sets[0].transforms[5].op",
                          "a cast must be the first transform of \"country\" (it reads the raw value); "
                          "feature_sets[0].transforms[0] comes before it"));
    EXPECT_EQ(r.errors.size(), 5u) << all_errors(r);

    const auto dropped = with_transforms(R"(
        {"op": "cast", "field": "clicks", "to": "int"},
        {"op": "lower", "field": "country"},
        {"op": "cast", "field": "spend", "to": "double"},
        {"op": "drop", "field": "country"},
        {"op": "upper", "field": "country"},
        {"op": "filter", "field": "country", "equals": "de"})");
    EXPECT_TRUE(has_error(dropped, "feature_sets[0].transforms[4].op",
                          "\"country\" is dropped by feature_sets[0].transforms[3]; a transform after the drop has "
                          "no effect"));
    // A cast of another field may follow; a filter may read a dropped field (it sees the value).
    EXPECT_EQ(dropped.errors.size(), 1u) << all_errors(dropped);
}

TEST(ConfigTransforms, AtMost256PerSet) {
    std::string list;
    for (int i = 0; i < 257; ++i) list += std::string(i ? "," : "") + R"({"op": "trim", "field": "country"})";
    EXPECT_TRUE(
        has_error(with_transforms(list), "feature_sets[0].transforms", "at most 256 transforms per feature set"));
}

TEST(ConfigTransforms, AggregationOverADroppedFieldIsRefused) {
    const auto r = with_transforms(R"({"op": "drop", "field": "spend"})",
                                   R"("aggregations": [{"name": "s", "field": "spend", "op": "sum", "window": "1h"}])");
    EXPECT_TRUE(
        has_error(r, "feature_sets[0].aggregations[0].field",
                  "\"spend\" is dropped by feature_sets[0].transforms[0]: the aggregation would only see nulls"));
}

// A clamp bound written as "${VAR}" is read as a number, like any number from the environment
// (the loader once kept a pointer to the converted number past its lifetime).
TEST(ConfigTransforms, ClampBoundsMayComeFromTheEnvironment) {
    ::setenv("SLUICE_TEST_CLAMP_MIN", "2", 1);
    ::setenv("SLUICE_TEST_CLAMP_MAX", "9.5", 1);
    const auto r = with_transforms(
        R"({"op": "clamp", "field": "spend", "min": "${SLUICE_TEST_CLAMP_MIN}", "max": "${SLUICE_TEST_CLAMP_MAX}"})");
    ASSERT_TRUE(r.ok()) << all_errors(r);
    ASSERT_EQ(r.cfg.feature_sets[0].transforms.size(), 1u);
    EXPECT_DOUBLE_EQ(std::get<double>(r.cfg.feature_sets[0].transforms[0].clamp_min), 2.0);
    EXPECT_DOUBLE_EQ(std::get<double>(r.cfg.feature_sets[0].transforms[0].clamp_max), 9.5);
    ::unsetenv("SLUICE_TEST_CLAMP_MIN");
    ::unsetenv("SLUICE_TEST_CLAMP_MAX");
}

TEST(ConfigDedup, IsReadWithDefaults) {
    const auto off = load_config_text(with_set(transform_fields));
    EXPECT_FALSE(off.cfg.feature_sets[0].dedup.enabled());
    const auto r = load_config_text(with_set(std::string(transform_fields) + R"(, "dedup": {"field": "email"})"));
    ASSERT_TRUE(r.ok()) << all_errors(r);
    const auto& dd = r.cfg.feature_sets[0].dedup;
    EXPECT_TRUE(dd.enabled());
    EXPECT_EQ(dd.field, "email");
    EXPECT_EQ(dd.field_index, 3u);
    EXPECT_EQ(dd.window_ms, 10LL * 60000);
    EXPECT_EQ(dd.max_ids, 1000000);
    const auto all = load_config_text(
        with_set(std::string(transform_fields) + R"(, "dedup": {"field": "clicks", "window": "2h", "max_ids": 5000})"));
    ASSERT_TRUE(all.ok()) << all_errors(all);
    EXPECT_EQ(all.cfg.feature_sets[0].dedup.field_index, 0u);
    EXPECT_EQ(all.cfg.feature_sets[0].dedup.window_ms, 7200000);
    EXPECT_EQ(all.cfg.feature_sets[0].dedup.max_ids, 5000);
}

TEST(ConfigDedup, Errors) {
    const auto dedup = [](const std::string& body, const std::string& more = "") {
        return load_config_text(with_set(std::string(transform_fields) + R"(, "dedup": )" + body + more));
    };
    EXPECT_TRUE(has_error(dedup("{}"), "feature_sets[0].dedup.field", "required key is missing"));
    EXPECT_TRUE(has_error(dedup(R"({"field": "event_id"})"), "feature_sets[0].dedup.field",
                          "\"event_id\" is not a declared field"));
    EXPECT_TRUE(has_error(dedup(R"({"field": "spend"})"), "feature_sets[0].dedup.field",
                          "dedup needs a string or int field holding the event id; \"spend\" is double"));
    EXPECT_TRUE(has_error(dedup(R"({"field": "email"})", R"(, "transforms": [{"op": "drop", "field": "email"}])"),
                          "feature_sets[0].dedup.field", "\"email\" is dropped by feature_sets[0].transforms[0]"));
    EXPECT_TRUE(has_error(dedup(R"({"field": "email", "window": "500ms"})"), "feature_sets[0].dedup.window",
                          "must be between 1s and 7d, got \"500ms\""));
    EXPECT_TRUE(has_error(dedup(R"({"field": "email", "window": "8d"})"), "feature_sets[0].dedup.window",
                          "must be between 1s and 7d"));
    EXPECT_TRUE(has_error(dedup(R"({"field": "email", "max_ids": 0})"), "feature_sets[0].dedup.max_ids",
                          "must be between 1 and 100000000, got 0"));
    EXPECT_TRUE(has_error(dedup(R"({"field": "email", "windw": "1m"})"), "feature_sets[0].dedup.windw",
                          "did you mean \"window\"?"));
    EXPECT_TRUE(has_error(dedup(R"("email")"), "feature_sets[0].dedup", "expected object, got string"));
}

}  // namespace
}  // namespace sluice
