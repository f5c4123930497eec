// A feature set's definition through its lifecycle, against the real binary, PostgreSQL, Redis and
// the Kafka protocol: a compatible change applied in place; a breaking one refused by the daemon
// and by `sluice plan` with every reason named; plan's exit codes; an environment refused on
// another's schema and Redis prefix; `sluice promote` on matching and mismatching specs; a set
// left out of the config retired and then dropped.

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <thread>

#include "integration/support/suite.hpp"

namespace it = sluice::it;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr const char* k_set = "user_activity";

// The README's user_activity set on its own schema and Redis prefix (one per test).
// Each test has a topic of its own, so that what it counts is its own.
std::string new_topic(it::test_stack& s) {
    const std::string topic = "definition-events-" + it::random_suffix();
    s.kafka.create_topic(topic, 2);
    return topic;
}

json config_for(it::test_stack& s, const std::string& topic, const std::string& schema, int http_port,
                const std::string& environment = "default") {
    json cfg = it::user_activity_config(s, "defs-" + it::random_suffix(), http_port, topic);
    cfg["postgres"]["schema"] = schema;
    cfg["redis"]["key_prefix"] = schema;
    cfg["environment"] = environment;
    return cfg;
}

void produce_events(it::test_stack& s, const std::string& topic, int n, int first_key = 0) {
    const std::int64_t t = it::now_ms() - 60'000;
    for (int i = 0; i < n; ++i) {
        const json e = {{"user_id", "u" + std::to_string(first_key + i)}, {"ts", t + i}, {"clicks", i}, {"spend", 1.5},
                        {"premium", true}};
        s.kafka.produce(topic, "u" + std::to_string(first_key + i), e.dump());
    }
    s.kafka.flush();
}

long long history_rows(it::test_stack& s, const std::string& schema, const std::string& table = "user_activity_history") {
    return it::pg_count(s.postgres.dsn(), "SELECT count(*) FROM " + schema + "." + table);
}

// Runs `sluice <args...>` with the config written to a file; the exit code and output.
it::command_result sluice_cli(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {it::sluice_binary()};
    argv.insert(argv.end(), args.begin(), args.end());
    return it::run_command(argv, 60s);
}

std::string write_config(const it::temp_dir& dir, const std::string& name, const json& cfg) {
    const auto path = dir / name;
    it::write_file(path, cfg.dump(2));
    return path.string();
}

// Runs the daemon with `cfg` until `rows` history rows are in `schema`, then stops it cleanly.
void run_until(it::test_stack& s, const json& cfg, int http_port, const std::string& schema, long long rows) {
    it::daemon_process daemon(cfg);
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, http_port, "daemon"));
    EXPECT_TRUE(it::wait_until(60s, [&] { return history_rows(s, schema) >= rows; }))
        << "history holds " << history_rows(s, schema) << " rows, expected " << rows;
    const auto st = daemon.terminate();
    ASSERT_TRUE(st && st->ok()) << (st ? st->describe() : "did not stop");
}

}  // namespace

class Definitions : public it::stack_suite<Definitions> {
public:
    static std::vector<it::topic_spec> topics() { return {}; }
};

TEST_F(Definitions, a_compatible_change_is_applied_in_place_as_a_new_revision) {
    it::test_stack& s = *stack_;
    const std::string topic = new_topic(s);
    const std::string schema = "defs_compat_" + it::random_suffix();
    const int port = it::free_port();
    json cfg = config_for(s, topic, schema, port);
    produce_events(s, topic, 40);
    ASSERT_NO_FATAL_FAILURE(run_until(s, cfg, port, schema, 40));
    const long long rows = history_rows(s, schema);

    // An optional field and an aggregation added, the TTL changed: compatible.
    cfg["feature_sets"][0]["fields"]["tier"] = {{"type", "string"}};
    cfg["feature_sets"][0]["aggregations"] = json::array({{{"name", "clicks_sum_1h"}, {"field", "clicks"}, {"op", "sum"}, {"window", "1h"}}});
    cfg["feature_sets"][0]["ttl"] = "48h";
    it::temp_dir dir("sluice-defs-");
    const auto plan = sluice_cli({"plan", "--config", write_config(dir, "next.json", cfg)});
    EXPECT_EQ(plan.status.code, 0) << plan.output;
    EXPECT_NE(plan.output.find("compatible field tier: added (string)"), std::string::npos) << plan.output;
    EXPECT_NE(plan.output.find("compatible aggregation clicks_sum_1h: added"), std::string::npos) << plan.output;
    EXPECT_NE(plan.output.find("compatible ttl: 1d -> 2d"), std::string::npos) << plan.output;
    EXPECT_EQ(plan.output.find("BREAKING"), std::string::npos) << plan.output;

    it::daemon_process daemon(cfg);
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, port, "changed daemon"));
    // The new column is there, the old rows are intact and null in it.
    EXPECT_EQ(it::pg_count(s.postgres.dsn(), "SELECT count(*) FROM " + schema + ".user_activity_history WHERE tier IS NULL"), rows);
    EXPECT_EQ(it::pg_count(s.postgres.dsn(), "SELECT count(*) FROM " + schema + ".user_activity_history WHERE clicks IS NOT NULL"), rows);
    const auto revisions = it::pg_query(s.postgres.dsn(), "SELECT revision, spec_sha256, environment, config_path, change FROM " +
                                                              schema + ".registry ORDER BY revision");
    ASSERT_EQ(revisions.size(), 2u);
    EXPECT_NE(revisions[0][1], revisions[1][1]);
    EXPECT_EQ(revisions[1][1].size(), 64u);
    EXPECT_EQ(revisions[1][2], "default");
    EXPECT_EQ(revisions[1][3], daemon.config_path().string());
    EXPECT_NE(revisions[1][4].find("field tier: added"), std::string::npos) << revisions[1][4];

    // The catalog shows the live version, its revision and hash, and when it became live.
    const auto res = it::http_get(port, std::string("/v1/feature-sets/") + k_set);
    ASSERT_EQ(res.status, 200) << res.body;
    const json body = json::parse(res.body);
    EXPECT_EQ(body["environment"], "default");
    EXPECT_EQ(body["version"], 1);
    EXPECT_EQ(body["definition"]["revision"], 2);
    EXPECT_EQ(body["definition"]["state"], "live");
    EXPECT_EQ(body["definition"]["spec_sha256"], revisions[1][1]);
    EXPECT_TRUE(body["definition"]["live_since"].is_string());
    ASSERT_EQ(body["versions"].size(), 1u);
    // Every metric carries the environment.
    const auto metrics = it::http_get(port, "/metrics");
    EXPECT_NE(metrics.body.find("sluice_records_total{environment=\"default\",feature_set=\"user_activity\""),
              std::string::npos);
    daemon.terminate();

    // Started again with the same file: no new revision.
    it::daemon_process again(cfg);
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(again, port, "same config"));
    again.terminate();
    EXPECT_EQ(it::pg_count(s.postgres.dsn(), "SELECT count(*) FROM " + schema + ".registry"), 2);
}

TEST_F(Definitions, a_breaking_change_is_refused_naming_every_reason_until_the_version_is_raised) {
    it::test_stack& s = *stack_;
    const std::string topic = new_topic(s);
    const std::string schema = "defs_break_" + it::random_suffix();
    const int port = it::free_port();
    json cfg = config_for(s, topic, schema, port);
    produce_events(s, topic, 10, 1000);
    ASSERT_NO_FATAL_FAILURE(run_until(s, cfg, port, schema, 10));

    json breaking = cfg;
    breaking["feature_sets"][0]["fields"]["clicks"]["type"] = "string";
    breaking["feature_sets"][0]["fields"].erase("premium");
    breaking["feature_sets"][0]["key"] = "uid";
    it::temp_dir dir("sluice-defs-");
    const auto path = write_config(dir, "breaking.json", breaking);
    const auto plan = sluice_cli({"plan", "--config", path});
    EXPECT_EQ(plan.status.code, 3) << plan.output;
    for (const char* reason : {"BREAKING   key: user_id -> uid", "BREAKING   field clicks: type int -> string",
                               "BREAKING   field premium: removed"})
        EXPECT_NE(plan.output.find(reason), std::string::npos) << reason << "\n" << plan.output;
    const auto plan_json = sluice_cli({"plan", "--config", path, "--json"});
    EXPECT_EQ(plan_json.status.code, 3);
    const json pj = json::parse(plan_json.output);
    EXPECT_EQ(pj["breaking"], true);
    EXPECT_EQ(pj["sets"][0]["changes"].size(), 3u) << plan_json.output;

    it::daemon_process daemon(breaking);
    daemon.start();
    ASSERT_TRUE(it::wait_until(30s, [&] { return !daemon.running(); })) << "the daemon started with a breaking change";
    const std::string log = daemon.log_tail();
    for (const char* reason : {"key: user_id -> uid", "field clicks: type int -> string", "field premium: removed"})
        EXPECT_NE(log.find(reason), std::string::npos) << reason << "\n" << log;
    // Nothing was changed: the column keeps its type, the registry its one revision.
    EXPECT_EQ(it::pg_query(s.postgres.dsn(), "SELECT data_type FROM information_schema.columns WHERE table_schema = $1 AND "
                                             "table_name = 'user_activity_latest' AND column_name = 'clicks'",
                           {schema})[0][0],
              "bigint");
    EXPECT_EQ(it::pg_count(s.postgres.dsn(), "SELECT count(*) FROM " + schema + ".registry"), 1);

    // With the version raised, plan sees a new version and version 1 retired: nothing breaking.
    breaking["feature_sets"][0]["version"] = 2;
    const auto bumped = sluice_cli({"plan", "--config", write_config(dir, "bumped.json", breaking)});
    EXPECT_EQ(bumped.status.code, 0) << bumped.output;
    EXPECT_NE(bumped.output.find("user_activity version 2: new version"), std::string::npos) << bumped.output;
    EXPECT_NE(bumped.output.find("user_activity version 1: retired"), std::string::npos) << bumped.output;
}

TEST_F(Definitions, plan_exits_one_on_errors_and_zero_when_nothing_changes) {
    it::test_stack& s = *stack_;
    const std::string topic = new_topic(s);
    const std::string schema = "defs_plan_" + it::random_suffix();
    const int port = it::free_port();
    json cfg = config_for(s, topic, schema, port);
    it::temp_dir dir("sluice-defs-");
    // Before anything ran: the set is added; plan made nothing (it is read only).
    const auto fresh = sluice_cli({"plan", "--config", write_config(dir, "a.json", cfg)});
    EXPECT_EQ(fresh.status.code, 0) << fresh.output;
    EXPECT_NE(fresh.output.find("user_activity version 1: added"), std::string::npos) << fresh.output;
    EXPECT_EQ(it::pg_count(s.postgres.dsn(), "SELECT count(*) FROM pg_namespace WHERE nspname = $1", {schema}), 0);

    produce_events(s, topic, 5, 2000);
    ASSERT_NO_FATAL_FAILURE(run_until(s, cfg, port, schema, 5));
    const auto same = sluice_cli({"plan", "--config", write_config(dir, "a.json", cfg)});
    EXPECT_EQ(same.status.code, 0) << same.output;
    EXPECT_NE(same.output.find("user_activity version 1: unchanged"), std::string::npos) << same.output;

    json invalid = cfg;
    invalid["feature_sets"][0]["ttl"] = "forever";
    const auto bad = sluice_cli({"plan", "--config", write_config(dir, "bad.json", invalid)});
    EXPECT_EQ(bad.status.code, 1) << bad.output;
    EXPECT_NE(bad.output.find("feature_sets[0].ttl"), std::string::npos) << bad.output;

    json unreachable = cfg;
    unreachable["postgres"]["dsn"] = "host=127.0.0.1 port=" + std::to_string(it::free_port()) + " user=postgres connect_timeout=2";
    const auto down = sluice_cli({"plan", "--config", write_config(dir, "down.json", unreachable)});
    EXPECT_EQ(down.status.code, 1) << down.output;
}

TEST_F(Definitions, an_environment_is_refused_on_another_environments_schema_and_redis_prefix) {
    it::test_stack& s = *stack_;
    const std::string topic = new_topic(s);
    const std::string schema = "defs_env_" + it::random_suffix();
    const int port = it::free_port();
    produce_events(s, topic, 5, 3000);
    ASSERT_NO_FATAL_FAILURE(run_until(s, config_for(s, topic, schema, port, "production"), port, schema, 5));

    // A staging config pointed at production's schema.
    json staging = config_for(s, topic, schema, port, "staging");
    it::daemon_process daemon(staging);
    daemon.start();
    ASSERT_TRUE(it::wait_until(30s, [&] { return !daemon.running(); })) << "staging started on production's schema";
    EXPECT_NE(daemon.log_tail().find("schema " + schema + " belongs to environment production"), std::string::npos)
        << daemon.log_tail();
    it::temp_dir dir("sluice-defs-");
    const auto plan = sluice_cli({"plan", "--config", write_config(dir, "staging.json", staging)});
    EXPECT_EQ(plan.status.code, 1) << plan.output;
    EXPECT_NE(plan.output.find("belongs to environment production"), std::string::npos) << plan.output;

    // A schema of its own, but production's Redis prefix.
    staging["postgres"]["schema"] = schema + "_stg";
    it::daemon_process on_prefix(staging);
    on_prefix.start();
    ASSERT_TRUE(it::wait_until(30s, [&] { return !on_prefix.running(); })) << "staging started on production's prefix";
    EXPECT_NE(on_prefix.log_tail().find("Redis prefix " + schema + " at 127.0.0.1:" + std::to_string(s.redis.port()) +
                                        " belongs to environment production"),
              std::string::npos)
        << on_prefix.log_tail();
}

TEST_F(Definitions, promote_passes_the_spec_live_in_staging_and_blocks_another) {
    it::test_stack& s = *stack_;
    const std::string topic = new_topic(s);
    const std::string schema = "defs_promo_" + it::random_suffix();
    const int port = it::free_port();
    json staging = config_for(s, topic, schema + "_stg", port, "staging");
    produce_events(s, topic, 20, 4000);
    ASSERT_NO_FATAL_FAILURE(run_until(s, staging, port, schema + "_stg", 20));

    json production = config_for(s, topic, schema + "_prod", port, "production");
    it::temp_dir dir("sluice-defs-");
    const auto from = write_config(dir, "staging.json", staging);
    const auto ok = sluice_cli({"promote", "--from", from, "--to", write_config(dir, "prod.json", production)});
    EXPECT_EQ(ok.status.code, 0) << ok.output;
    EXPECT_NE(ok.output.find("user_activity version 1: ready"), std::string::npos) << ok.output;

    json changed = production;
    changed["feature_sets"][0]["fields"]["spend"]["type"] = "int";
    const auto blocked = sluice_cli({"promote", "--from", from, "--to", write_config(dir, "prod2.json", changed)});
    EXPECT_EQ(blocked.status.code, 3) << blocked.output;
    EXPECT_NE(blocked.output.find("BLOCKED"), std::string::npos) << blocked.output;
    EXPECT_NE(blocked.output.find("the spec differs from the one staging runs"), std::string::npos) << blocked.output;
    EXPECT_NE(blocked.output.find("field spend: type double -> int"), std::string::npos) << blocked.output;

    // A staging that saw mostly dead letters blocks too.
    for (int i = 0; i < 30; ++i) s.kafka.produce(topic, "bad", "{not json");
    s.kafka.flush();
    it::daemon_process again(staging);
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(again, port, "staging again"));
    EXPECT_TRUE(it::wait_until(60s, [&] {
        return it::pg_count(s.postgres.dsn(), "SELECT count(*) FROM " + schema + "_stg.dead_letters") >= 30;
    }));
    again.terminate();
    const auto spiky = sluice_cli({"promote", "--from", from, "--to", write_config(dir, "prod.json", production), "--json"});
    EXPECT_EQ(spiky.status.code, 3) << spiky.output;
    const json report = json::parse(spiky.output);
    EXPECT_EQ(report["ready"], false);
    EXPECT_EQ(report["sets"][0]["staging"]["dead_letters"], 30);
}

TEST_F(Definitions, a_set_left_out_is_retired_then_dropped_only_with_yes) {
    it::test_stack& s = *stack_;
    const std::string topic = new_topic(s);
    const std::string schema = "defs_drop_" + it::random_suffix();
    const int port = it::free_port();
    json two = config_for(s, topic, schema, port);
    json other = two["feature_sets"][0];
    other["name"] = "sessions";
    other["topic"] = topic + "-sessions";
    s.kafka.create_topic(other["topic"], 1);
    two["feature_sets"].push_back(other);
    produce_events(s, topic, 5, 5000);
    produce_events(s, other["topic"], 3, 6000);
    {
        it::daemon_process daemon(two);
        ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, port, "two sets"));
        EXPECT_TRUE(it::wait_until(60s, [&] {
            return history_rows(s, schema) == 5 && history_rows(s, schema, "sessions_history") == 3;
        }));
        daemon.terminate();
    }
    const std::string sessions_offsets =
        "SELECT count(*) FROM " + schema + ".consumer_offsets WHERE topic = '" + other["topic"].get<std::string>() + "'";
    EXPECT_GT(it::pg_count(s.postgres.dsn(), sessions_offsets), 0);

    json one = two;  // the same group: only the set list changes
    one["feature_sets"].erase(1);
    it::temp_dir dir("sluice-defs-");
    const auto path = write_config(dir, "one.json", one);
    const auto plan = sluice_cli({"plan", "--config", path});
    EXPECT_EQ(plan.status.code, 0) << plan.output;
    EXPECT_NE(plan.output.find("sessions version 1: retired"), std::string::npos) << plan.output;
    // Not retired yet: drop refuses.
    EXPECT_EQ(sluice_cli({"drop", "--config", path, "--set", "sessions", "--version", "1", "--yes"}).status.code, 1);

    it::daemon_process daemon(one);
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, port, "one set"));
    daemon.terminate();
    EXPECT_EQ(it::pg_query(s.postgres.dsn(), "SELECT state FROM " + schema + ".registry_versions WHERE feature_set = 'sessions'")[0][0],
              "retired");
    const auto dry = sluice_cli({"drop", "--config", path, "--set", "sessions", "--version", "1"});
    EXPECT_EQ(dry.status.code, 1) << dry.output;
    EXPECT_NE(dry.output.find("would drop " + schema + ".sessions_history"), std::string::npos) << dry.output;
    EXPECT_GE(it::pg_count(s.postgres.dsn(), "SELECT count(*) FROM " + schema + ".sessions_history"), 0);

    const auto dropped = sluice_cli({"drop", "--config", path, "--set", "sessions", "--version", "1", "--yes"});
    EXPECT_EQ(dropped.status.code, 0) << dropped.output;
    EXPECT_EQ(it::pg_count(s.postgres.dsn(), "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename LIKE 'sessions%'",
                           {schema}),
              0);
    EXPECT_EQ(it::pg_query(s.postgres.dsn(), "SELECT state FROM " + schema + ".registry_versions WHERE feature_set = 'sessions'")[0][0],
              "dropped");
    // Its group's offsets go with it (added again later, it is built anew).
    EXPECT_EQ(it::pg_count(s.postgres.dsn(), sessions_offsets), 0);
    // Its revisions stay: the registry is append-only.
    EXPECT_EQ(it::pg_count(s.postgres.dsn(), "SELECT count(*) FROM " + schema + ".registry WHERE feature_set = 'sessions'"), 1);
    // The set that stays is untouched.
    EXPECT_EQ(history_rows(s, schema), 5);
}

TEST_F(Definitions, a_raised_version_is_backfilled_exactly_once_while_the_old_one_serves_then_takes_over) {
    it::test_stack& s = *stack_;
    const std::string topic = new_topic(s);
    const std::string schema = "defs_ver_" + it::random_suffix();
    const int port = it::free_port();
    json v1 = config_for(s, topic, schema, port);
    constexpr int k_events = 30000, k_keys = 200;
    const std::int64_t t0 = it::now_ms() - 3'600'000;
    for (int i = 0; i < k_events; ++i) {
        const std::string key = "u" + std::to_string(i % k_keys);
        s.kafka.produce(topic, key, json{{"user_id", key}, {"ts", t0 + i}, {"clicks", i}, {"spend", 2.5}}.dump());
    }
    s.kafka.flush();
    ASSERT_NO_FATAL_FAILURE(run_until(s, v1, port, schema, k_events));

    // Version 2 changes clicks' type (breaking) and adds tier; version 1 stays beside it.
    json both = v1;
    json second = v1["feature_sets"][0];
    second["version"] = 2;
    second["fields"]["clicks"]["type"] = "double";
    second["fields"]["tier"] = {{"type", "string"}, {"default", "gold"}};
    both["feature_sets"].push_back(second);
    it::temp_dir dir("sluice-defs-");
    const auto plan = sluice_cli({"plan", "--config", write_config(dir, "both.json", both)});
    EXPECT_EQ(plan.status.code, 0) << plan.output;
    EXPECT_NE(plan.output.find("user_activity version 2: new version"), std::string::npos) << plan.output;

    const std::string v2_history = "user_activity_v2_history";
    {
        // Killed as soon as the backfill has written anything.
        it::daemon_process first(both);
        first.start();
        ASSERT_TRUE(it::wait_until(60s, [&] { return history_rows(s, schema, v2_history) > 0; }, 5ms))
            << first.log_tail();
        first.kill9();
        std::printf("[versions] killed with %lld of %d rows backfilled\n", history_rows(s, schema, v2_history), k_events);
    }

    it::daemon_process daemon(both);
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, port, "both versions"));
    // Reads of the name never fail while version 2 backfills: version 1 answers them.
    int reads = 0, served_by_v2 = 0, progress_seen = 0;
    bool switched = false;
    const bool caught_up = it::wait_until(120s, [&] {
        const auto r = it::http_get(port, "/v1/features/user_activity/u5");
        EXPECT_EQ(r.status, 200) << r.body;
        ++reads;
        if (r.status == 200 && r.body.find("\"tier\"") != std::string::npos) ++served_by_v2;
        const auto c = it::http_get(port, "/v1/feature-sets/user_activity@2");
        if (c.status != 200) return false;
        const json cj = json::parse(c.body);
        switched = cj.value("serving", false);
        // The backfill's progress while it runs: what is durable and what is left, of every message.
        if (cj.contains("backfill") && cj["backfill"]["state"] == "backfilling" &&
            cj["backfill"]["done"].get<long long>() + cj["backfill"]["to_do"].get<long long>() == k_events)
            ++progress_seen;
        return cj["definition"]["state"] == "live" && switched;
    }, 20ms);
    ASSERT_TRUE(caught_up) << daemon.log_tail();
    std::printf("[versions] %d reads during the backfill, all 200; %d of them by version 2; progress seen %d times\n",
                reads, served_by_v2, progress_seen);
    EXPECT_GT(progress_seen, 0) << "the catalog never showed the backfill's progress";
    const json after_switch = json::parse(it::http_get(port, "/v1/feature-sets/user_activity@2").body);
    EXPECT_EQ(after_switch["backfill"]["state"], "live") << after_switch.dump();

    // Switched within a batch (batch_max_records, 1000) of the end; then every message once in
    // version 2's history, each offset once.
    EXPECT_GE(history_rows(s, schema, v2_history), k_events - 1000);
    EXPECT_TRUE(it::wait_until(30s, [&] { return history_rows(s, schema, v2_history) >= k_events; }));
    std::this_thread::sleep_for(500ms);  // anything beyond would show up now
    EXPECT_EQ(history_rows(s, schema, v2_history), k_events);
    EXPECT_EQ(it::pg_count(s.postgres.dsn(), "SELECT count(DISTINCT (src_partition, src_offset)) FROM " + schema + "." + v2_history),
              k_events);
    // The name now reads version 2; version 1 is still addressable.
    const auto now = it::http_get(port, "/v1/features/user_activity/u5");
    ASSERT_EQ(now.status, 200);
    EXPECT_EQ(json::parse(now.body)["values"]["tier"], "gold") << now.body;
    const auto old = it::http_get(port, "/v1/features/user_activity@1/u5");
    ASSERT_EQ(old.status, 200) << old.body;
    EXPECT_FALSE(json::parse(old.body)["values"].contains("tier")) << old.body;
    EXPECT_EQ(it::http_get(port, "/v1/features/user_activity@3/u5").status, 404);

    // New events reach both versions.
    for (int i = 0; i < 100; ++i)
        s.kafka.produce(topic, "u" + std::to_string(i), json{{"user_id", "u" + std::to_string(i)}, {"ts", t0 + k_events + i}, {"clicks", 1}}.dump());
    s.kafka.flush();
    EXPECT_TRUE(it::wait_until(30s, [&] {
        return history_rows(s, schema) == k_events + 100 && history_rows(s, schema, v2_history) == k_events + 100;
    })) << history_rows(s, schema) << " / " << history_rows(s, schema, v2_history);
    daemon.terminate();

    // Version 1 left out: retired, no longer served, its tables kept until dropped.
    json only_v2 = v1;
    only_v2["feature_sets"] = json::array({second});
    it::daemon_process after(only_v2);
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(after, port, "version 2 only"));
    EXPECT_EQ(it::http_get(port, "/v1/features/user_activity@1/u5").status, 404);
    EXPECT_EQ(it::http_get(port, "/v1/features/user_activity/u5").status, 200);
    const json catalog = json::parse(it::http_get(port, "/v1/feature-sets/user_activity").body);
    bool retired = false;
    for (const auto& v : catalog["versions"]) retired = retired || (v["version"] == 1 && v["state"] == "retired");
    EXPECT_TRUE(retired) << catalog.dump();
    after.terminate();
    EXPECT_EQ(history_rows(s, schema), k_events + 100);
    const auto dropped = sluice_cli({"drop", "--config", write_config(dir, "v2.json", only_v2), "--set", "user_activity",
                                     "--version", "1", "--yes"});
    EXPECT_EQ(dropped.status.code, 0) << dropped.output;
    EXPECT_EQ(history_rows(s, schema), -1);  // gone
    EXPECT_EQ(history_rows(s, schema, v2_history), k_events + 100);
}

TEST_F(Definitions, try_reports_what_the_daemon_then_writes_and_writes_nothing_itself) {
    it::test_stack& s = *stack_;
    const std::string topic = new_topic(s);
    const std::string schema = "defs_try_" + it::random_suffix();
    const int port = it::free_port();
    json cfg = config_for(s, topic, schema, port);
    const std::string group = cfg["kafka"]["group_id"];
    const std::int64_t t = it::now_ms() - 60'000;
    int good = 0;
    for (int i = 0; i < 350; ++i) {
        const std::string key = "u" + std::to_string(i % 50);
        json e = {{"user_id", key}, {"ts", t + i}, {"clicks", i}, {"spend", 0.5 * (i % 7)}, {"country", i % 3 ? "DE" : "FR"}};
        if (i % 35 == 3) {
            s.kafka.produce(topic, key, "{\"user_id\": \"" + key + "\", \"ts\":");  // malformed JSON
        } else if (i % 35 == 7) {
            e.erase("clicks");  // a required field missing
            s.kafka.produce(topic, key, e.dump());
        } else if (i % 35 == 11) {
            e["spend"] = -1;  // below min
            s.kafka.produce(topic, key, e.dump());
        } else if (i % 35 == 13) {
            s.kafka.produce(topic, key, std::nullopt);  // a tombstone
        } else {
            s.kafka.produce(topic, key, e.dump());
            ++good;
        }
    }
    s.kafka.flush();

    it::temp_dir dir("sluice-defs-");
    const auto path = write_config(dir, "try.json", cfg);
    const auto tried = sluice_cli({"try", "--config", path, "--set", k_set, "--from-start", "--records", "100000", "--json"});
    ASSERT_EQ(tried.status.code, 0) << tried.output;
    const json report = json::parse(tried.output);
    EXPECT_EQ(report["read"], 350);
    EXPECT_EQ(report["parsed"], good);
    EXPECT_EQ(report["dead_letters"]["count"], 350 - good);
    EXPECT_EQ(report["dead_letters"]["by_reason"]["tombstone"], 10);
    EXPECT_EQ(report["dead_letters"]["by_reason"]["invalid"], 30);
    EXPECT_NEAR(report["fields"]["premium"]["null_rate"].get<double>(), 1.0, 1e-9);
    EXPECT_EQ(report["fields"]["spend"]["min"], 0.0);
    EXPECT_EQ(report["fields"]["country"]["top"][0]["value"], "DE");
    EXPECT_EQ(report["rows"].size(), 5u);
    // The text form says the same.
    const auto text = sluice_cli({"try", "--config", path, "--set", k_set, "--from-start"});
    EXPECT_EQ(text.status.code, 0) << text.output;
    EXPECT_NE(text.output.find("read 350, parsed " + std::to_string(good)), std::string::npos) << text.output;
    // Nothing was written: no schema, no group offsets.
    EXPECT_EQ(it::pg_count(s.postgres.dsn(), "SELECT count(*) FROM pg_namespace WHERE nspname = $1", {schema}), 0);
    for (const auto& [p, off] : s.kafka.committed_offsets(group, topic, 2)) EXPECT_LT(off, 0) << "partition " << p;

    // The daemon, running the same definition for real, writes exactly that.
    ASSERT_NO_FATAL_FAILURE(run_until(s, cfg, port, schema, good));
    EXPECT_EQ(history_rows(s, schema), good);
    std::map<std::string, long long> written;
    for (const auto& row : it::pg_query(s.postgres.dsn(), "SELECT error, count(*) FROM " + schema + ".dead_letters GROUP BY error"))
        written[row[0]] = std::stoll(row[1]);
    std::map<std::string, long long> reported;
    for (const auto& e : report["dead_letters"]["by_error"]) reported[e["error"]] = e["count"].get<long long>();
    EXPECT_EQ(written, reported);
}

TEST_F(Definitions, a_version_backfills_from_the_configured_start_time) {
    it::test_stack& s = *stack_;
    const std::string topic = new_topic(s);
    const std::string schema = "defs_from_" + it::random_suffix();
    const int port = it::free_port();
    produce_events(s, topic, 100, 0);
    std::this_thread::sleep_for(1500ms);
    const std::int64_t from = it::now_ms();  // the Kafka timestamps of what follows are later
    std::this_thread::sleep_for(100ms);
    produce_events(s, topic, 60, 100);

    json cfg = config_for(s, topic, schema, port);
    json second = cfg["feature_sets"][0];
    second["version"] = 2;
    second["fields"]["clicks"]["type"] = "double";
    second["backfill_from"] = it::rfc3339_ms(from);
    cfg["feature_sets"].push_back(second);
    it::daemon_process daemon(cfg);
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, port, "backfill_from"));
    EXPECT_TRUE(it::wait_until(60s, [&] {
        return history_rows(s, schema) == 160 && history_rows(s, schema, "user_activity_v2_history") == 60;
    })) << history_rows(s, schema) << " / " << history_rows(s, schema, "user_activity_v2_history");
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(history_rows(s, schema, "user_activity_v2_history"), 60);
    EXPECT_EQ(it::pg_count(s.postgres.dsn(), "SELECT count(*) FROM " + schema + ".user_activity_v2_history WHERE key = 'u5'"), 0);
    daemon.terminate();
}
