// The canonical spec and the compatible/breaking rules: a table of one-set config pairs, each with
// the classification `sluice plan` must print and whether the daemon may apply it at that version.

#include <gtest/gtest.h>

#include <string>

#include "sluice/config/definition.hpp"
#include "sluice/config/loader.hpp"

namespace sluice {
namespace {

// A config holding one set whose body (the members after "name") is given.
config load_set(const std::string& members, const std::string& top = "") {
    const std::string text = R"({)" + top + R"( "kafka": {"brokers": "embedded"}, "feature_sets": [{"name": "users", )" +
                             members + R"(}]})";
    auto loaded = load_config_text(text);
    EXPECT_TRUE(loaded.ok()) << format_errors(loaded.errors) << text;
    return loaded.cfg;
}

const std::string base = R"("topic": "t", "key": "id", "event_time": "ts", "fields": {
        "clicks": {"type": "int", "required": true, "min": 0},
        "spend": {"type": "double"},
        "country": {"type": "string", "allowed": ["DE", "FR"]}},
    "aggregations": [{"name": "spend_1h", "field": "spend", "op": "sum", "window": "1h"}])";

std::string spec_of(const std::string& members) { return canonical_spec(load_set(members).feature_sets.at(0)); }

TEST(CanonicalSpec, WhitespaceKeyOrderAndSpelledOutDefaultsDoNotCount) {
    const std::string a = spec_of(base);
    const std::string b = spec_of(R"("aggregations": [{"window": "60m", "op": "sum", "field": "spend", "name": "spend_1h"}],
        "fields": {"country": {"allowed": ["DE", "FR"], "type": "string"}, "spend": {"type": "double", "required": false},
                   "clicks": {"min": 0, "required": true, "type": "int"}},
        "event_time": "ts", "key": "id", "topic": "t", "ttl": "24h", "version": 1)");
    EXPECT_EQ(a, b);
    EXPECT_EQ(spec_hash(a), spec_hash(b));
    EXPECT_EQ(spec_hash(a).size(), 64u);
    EXPECT_NE(a, spec_of(base + R"(, "ttl": "1h")"));
}

TEST(CanonicalSpec, IsAConfigTheReaderReadsBackToTheSameSet) {
    const std::string members = base + R"(, "ttl": "90s", "allowed_lateness": "0", "event_time_fallback": "kafka_timestamp",
        "dedup": {"field": "country", "window": "5m"},
        "transforms": [{"op": "rename", "from": "c", "to": "country"}, {"op": "lower", "field": "country"},
                       {"op": "clamp", "field": "clicks", "min": 0, "max": 100},
                       {"op": "default", "field": "spend", "value": 1.5}, {"op": "hash", "field": "country", "salt": "s"},
                       {"op": "filter", "field": "country", "in": ["DE", "FR"]}])";
    const auto original = load_set(members).feature_sets.at(0);
    const std::string spec = canonical_spec(original);
    auto reread = load_config_text(R"({"kafka": {"brokers": "embedded"}, "feature_sets": [)" + spec + "]}");
    ASSERT_TRUE(reread.ok()) << format_errors(reread.errors) << spec;
    // Fields come back in name order (the spec's objects are sorted), otherwise the same set.
    const auto& back = reread.cfg.feature_sets.at(0);
    EXPECT_EQ(canonical_spec(back), spec);
    EXPECT_EQ(back.transforms.size(), original.transforms.size());
    EXPECT_EQ(back.ttl_ms, 90000);
    EXPECT_EQ(back.dedup.window_ms, 300000);
    EXPECT_EQ(back.event_time_fallback, time_fallback::kafka_timestamp);
}

struct change_case {
    const char* name;
    std::string new_members;
    bool breaking;
    const char* subject;  // the change the plan must name
};

class Classification : public ::testing::TestWithParam<change_case> {};

TEST_P(Classification, IsDecidedOnceForEachKindOfChange) {
    const auto& c = GetParam();
    const auto changes = classify_changes(spec_of(base), spec_of(c.new_members));
    ASSERT_FALSE(changes.empty()) << c.name;
    bool named = false, any_breaking = false;
    for (const auto& ch : changes) {
        named = named || ch.subject == c.subject;
        any_breaking = any_breaking || ch.breaking;
        EXPECT_FALSE(ch.why.empty());
    }
    EXPECT_TRUE(named) << c.name << ": no change names " << c.subject;
    EXPECT_EQ(any_breaking, c.breaking) << c.name;

    // The plan against a registry holding the base: exit code 3 material exactly when breaking.
    registered_definition live;
    live.set = "users";
    live.spec = spec_of(base);
    live.sha256 = spec_hash(live.spec);
    const auto plan = plan_definitions(load_set(c.new_members), {live});
    ASSERT_EQ(plan.sets.size(), 1u);
    EXPECT_EQ(plan.sets[0].action, plan_action::changed);
    EXPECT_EQ(plan.breaking(), c.breaking);
    EXPECT_NE(plan.text().find(c.breaking ? "BREAKING" : "compatible"), std::string::npos) << plan.text();
    EXPECT_NE(plan.json().find("\"breaking\": " + std::string(c.breaking ? "true" : "false")), std::string::npos);

    // With the version raised, nothing is breaking: the new version is built anew.
    auto raised = load_set(c.new_members + R"(, "version": 2)");
    const auto bumped = plan_definitions(raised, {live});
    EXPECT_FALSE(bumped.breaking()) << bumped.text();
    ASSERT_EQ(bumped.sets.size(), 2u);
    EXPECT_EQ(bumped.sets[0].action, plan_action::new_version);
    EXPECT_EQ(bumped.sets[1].action, plan_action::retired);
}

const std::string fields_without(const std::string& drop) {
    std::string f = R"("clicks": {"type": "int", "required": true, "min": 0}, "spend": {"type": "double"}, )"
                    R"("country": {"type": "string", "allowed": ["DE", "FR"]})";
    const auto at = f.find("\"" + drop + "\"");
    const auto end = f.find('}', at) + 1;
    f.erase(at, end - at);
    // Tidy the comma left behind.
    for (const char* bad : {", , ", "{, "})
        if (auto p = f.find(bad); p != std::string::npos) f.erase(p, 2);
    if (f.size() >= 2 && f.compare(f.size() - 2, 2, ", ") == 0) f.erase(f.size() - 2);
    return f;
}

std::string with_fields(const std::string& fields, const std::string& aggs = R"([{"name": "spend_1h", "field": "spend", "op": "sum", "window": "1h"}])") {
    return R"("topic": "t", "key": "id", "event_time": "ts", "fields": {)" + fields + R"(}, "aggregations": )" + aggs;
}

const std::string all_fields = R"("clicks": {"type": "int", "required": true, "min": 0}, "spend": {"type": "double"}, )"
                               R"("country": {"type": "string", "allowed": ["DE", "FR"]})";

INSTANTIATE_TEST_SUITE_P(
    ConfigPairs, Classification,
    ::testing::Values(
        change_case{"optional field added", with_fields(all_fields + R"(, "premium": {"type": "bool"})"), false,
                    "field premium"},
        change_case{"required field added", with_fields(all_fields + R"(, "premium": {"type": "bool", "required": true})"),
                    true, "field premium"},
        change_case{"default added", with_fields(R"("clicks": {"type": "int", "required": true, "min": 0}, "spend": {"type": "double", "default": 0}, "country": {"type": "string", "allowed": ["DE", "FR"]})"),
                    false, "field spend"},
        change_case{"allowed value added", with_fields(R"("clicks": {"type": "int", "required": true, "min": 0}, "spend": {"type": "double"}, "country": {"type": "string", "allowed": ["DE", "FR", "IT"]})"),
                    false, "field country"},
        change_case{"allowed value removed", with_fields(R"("clicks": {"type": "int", "required": true, "min": 0}, "spend": {"type": "double"}, "country": {"type": "string", "allowed": ["DE"]})"),
                    true, "field country"},
        change_case{"limit changed", with_fields(R"("clicks": {"type": "int", "required": true, "min": 5}, "spend": {"type": "double"}, "country": {"type": "string", "allowed": ["DE", "FR"]})"),
                    false, "field clicks"},
        change_case{"required dropped", with_fields(R"("clicks": {"type": "int", "min": 0}, "spend": {"type": "double"}, "country": {"type": "string", "allowed": ["DE", "FR"]})"),
                    false, "field clicks"},
        change_case{"aggregation added",
                    with_fields(all_fields, R"([{"name": "spend_1h", "field": "spend", "op": "sum", "window": "1h"}, {"name": "n_1d", "field": "clicks", "op": "count", "window": "1d"}])"),
                    false, "aggregation n_1d"},
        change_case{"ttl changed", base + R"(, "ttl": "1h")", false, "ttl"},
        change_case{"transform added", base + R"(, "transforms": [{"op": "upper", "field": "country"}])", false,
                    "transforms"},
        change_case{"dedup added", base + R"(, "dedup": {"field": "country"})", false, "dedup"},
        change_case{"lateness changed", base + R"(, "allowed_lateness": "5m")", false, "allowed_lateness"},
        change_case{"field type changed", with_fields(R"("clicks": {"type": "double", "required": true, "min": 0}, "spend": {"type": "double"}, "country": {"type": "string", "allowed": ["DE", "FR"]})"),
                    true, "field clicks"},
        change_case{"field removed", with_fields(fields_without("country")), true, "field country"},
        change_case{"key changed", R"("topic": "t", "key": "user", "event_time": "ts", "fields": {)" + all_fields +
                                       R"(}, "aggregations": [{"name": "spend_1h", "field": "spend", "op": "sum", "window": "1h"}])",
                    true, "key"},
        change_case{"event time changed", R"("topic": "t", "key": "id", "event_time": "at", "fields": {)" + all_fields +
                                              R"(}, "aggregations": [{"name": "spend_1h", "field": "spend", "op": "sum", "window": "1h"}])",
                    true, "event_time"},
        change_case{"aggregation window changed",
                    with_fields(all_fields, R"([{"name": "spend_1h", "field": "spend", "op": "sum", "window": "2h"}])"), true,
                    "aggregation spend_1h"},
        change_case{"aggregation op changed",
                    with_fields(all_fields, R"([{"name": "spend_1h", "field": "spend", "op": "max", "window": "1h"}])"), true,
                    "aggregation spend_1h"},
        change_case{"aggregation removed", with_fields(all_fields, "[]"), true, "aggregation spend_1h"}),
    [](const ::testing::TestParamInfo<change_case>& info) {
        std::string n = info.param.name;
        for (auto& ch : n)
            if (ch == ' ') ch = '_';
        return n;
    });

TEST(Plan, NamesEveryBreakingChangeAtOnce) {
    registered_definition live;
    live.set = "users";
    live.spec = spec_of(base);
    const auto plan = plan_definitions(
        load_set(with_fields(R"("clicks": {"type": "string", "required": true}, "spend": {"type": "double"})", "[]")), {live});
    const auto reasons = plan.breaking_reasons();
    ASSERT_EQ(reasons.size(), 3u) << plan.text();
    EXPECT_NE(reasons[0].find("field country: removed"), std::string::npos) << reasons[0];
    EXPECT_NE(reasons[1].find("field clicks: type int -> string"), std::string::npos) << reasons[1];
    EXPECT_NE(reasons[2].find("aggregation spend_1h: removed"), std::string::npos) << reasons[2];
}

TEST(Plan, SetsNewToTheRegistryAreAddedAndTheSameSpecIsUnchanged) {
    const auto cfg = load_set(base);
    EXPECT_EQ(plan_definitions(cfg, {}).sets.at(0).action, plan_action::added);
    registered_definition live;
    live.set = "users";
    live.spec = canonical_spec(cfg.feature_sets.at(0));
    EXPECT_EQ(plan_definitions(cfg, {live}).sets.at(0).action, plan_action::unchanged);
    live.state = definition_state::retired;
    EXPECT_EQ(plan_definitions(cfg, {live}).sets.at(0).action, plan_action::revived);
}

TEST(Plan, ASetLeftOutOfTheConfigIsRetiredAndARetiredOneIsNotRetiredAgain) {
    const auto cfg = load_set(base);
    registered_definition other;
    other.set = "orders";
    other.spec = "{}";
    auto plan = plan_definitions(cfg, {other});
    ASSERT_EQ(plan.sets.size(), 2u);
    EXPECT_EQ(plan.sets[1].set, "orders");
    EXPECT_EQ(plan.sets[1].action, plan_action::retired);
    EXPECT_FALSE(plan.breaking());
    other.state = definition_state::retired;
    EXPECT_EQ(plan_definitions(cfg, {other}).sets.size(), 1u);
}

TEST(Config, TwoVersionsOfOneSetMayShareItsTopicButNotAVersion) {
    const std::string two = R"({"kafka": {"brokers": "embedded"}, "feature_sets": [
        {"name": "users", "topic": "t", "key": "id", "event_time": "ts"},
        {"name": "users", "version": 2, "topic": "t", "key": "user", "event_time": "ts"}]})";
    auto loaded = load_config_text(two);
    ASSERT_TRUE(loaded.ok()) << format_errors(loaded.errors);
    EXPECT_EQ(loaded.cfg.feature_sets[1].storage_name(), "users_v2");
    EXPECT_EQ(loaded.cfg.feature_sets[1].versioned_name(), "users@2");
    EXPECT_EQ(loaded.cfg.feature_sets[0].storage_name(), "users");

    auto same = load_config_text(R"({"kafka": {"brokers": "embedded"}, "feature_sets": [
        {"name": "users", "version": 2, "topic": "t", "key": "id", "event_time": "ts"},
        {"name": "users", "version": 2, "topic": "t", "key": "user", "event_time": "ts"}]})");
    ASSERT_FALSE(same.ok());
    EXPECT_NE(format_errors(same.errors).find("duplicate feature set name \"users\""), std::string::npos);

    auto other = load_config_text(R"({"kafka": {"brokers": "embedded"}, "feature_sets": [
        {"name": "users", "topic": "t", "key": "id", "event_time": "ts"},
        {"name": "orders", "topic": "t", "key": "id", "event_time": "ts"}]})");
    EXPECT_FALSE(other.ok());
}

TEST(Config, TheEnvironmentIsANameAndDefaultsToDefault) {
    EXPECT_EQ(load_set(base).environment, "default");
    EXPECT_EQ(load_set(base, R"("environment": "staging",)").environment, "staging");
    EXPECT_FALSE(load_config_text(R"({"environment": "Prod Env", "kafka": {"brokers": "embedded"},
        "feature_sets": [{"name": "u", "topic": "t", "key": "id", "event_time": "ts"}]})").ok());
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

// A registry row is data: specs missing members or holding the wrong shapes are compared, or
// reported unreadable, never trusted (the definition fuzzer found the missing-member case).
TEST(Classification, SpecsMissingMembersOrOfTheWrongShapeAreComparedSafely) {
    const auto missing = classify_changes(R"({"name": "s", "topic": "t", "key": "id"})", R"({"name": "s"})");
    ASSERT_FALSE(missing.empty());
    EXPECT_EQ(missing[0].subject, "key");
    EXPECT_EQ(missing[0].change, "id -> null");
    EXPECT_TRUE(missing[0].breaking);

    const auto wrong = classify_changes(R"({"fields": [1, 2]})", R"({"fields": {"a": 3}})");
    ASSERT_EQ(wrong.size(), 1u);
    EXPECT_EQ(wrong[0].subject, "spec");
    EXPECT_TRUE(wrong[0].breaking);

    const auto not_json = classify_changes("{", "[]");
    ASSERT_EQ(not_json.size(), 1u);
    EXPECT_EQ(not_json[0].change, "unreadable");
}

}  // namespace
}  // namespace sluice
