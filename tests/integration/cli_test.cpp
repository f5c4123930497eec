// The command line against the real binary: --version; --check accepting a good config and
// naming the JSON path of every mistake in a bad one; --describe-config listing every key.

#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "integration/support/stack.hpp"

namespace it = sluice::it;
using namespace std::chrono_literals;

namespace {

// A complete config whose services do not need to exist: --check validates, it does not connect.
std::string valid_config(const std::string& extra_kafka = "", const std::string& http_threads = "1") {
    return R"({
  // comments are allowed
  "kafka": {"brokers": "127.0.0.1:9", "group_id": "it-check", "consumer_threads": 2,)" +
           extra_kafka + R"(
            "properties": {"session.timeout.ms": "6000", "auto.offset.reset": "earliest"}},
  "feature_sets": [{"name": "user_activity", "topic": "user-events", "key": "user_id", "event_time": "ts",
     "fields": {"clicks": {"type": "int", "required": true}, "spend": {"type": "double", "min": 0},
                "country": {"type": "string", "default": "??"}, "premium": {"type": "bool"}},
     "ttl": "24h"}],
  "pipeline": {"preprocess_threads": 2, "queue_capacity": 4096, "batch_max_records": 1000, "batch_linger_ms": 5},
  "postgres": {"dsn": "host=127.0.0.1 port=9 dbname=sluice user=postgres", "schema": "sluice"},
  "redis": {"host": "127.0.0.1", "port": 9, "key_prefix": "sluice"},
  "http": {"listen": "127.0.0.1:9", "threads": )" +
           http_threads + R"(},
  "log": {"level": "info", "format": "text"}
}
)";
}

it::command_result check(const std::string& config_text) {
    it::temp_dir dir("sluice-check-");
    it::write_file(dir / "sluice.json", config_text);
    return it::run_command({it::sluice_binary(), "--config", (dir / "sluice.json").string(), "--check"}, 30s);
}

// "NAME=value" for every ${NAME} a config refers to, with a value of the shape its name
// suggests, so that example configs that take their secrets from the environment can be
// checked as they are.
std::vector<std::string> placeholder_env(const std::string& config_text) {
    static const std::regex ref(R"(\$\{([A-Za-z_][A-Za-z0-9_]*)\})");
    auto ends_with = [](const std::string& s, const std::string& suffix) {
        return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    std::set<std::string> names;
    for (std::sregex_iterator m(config_text.begin(), config_text.end(), ref), end; m != end; ++m) {
        names.insert((*m)[1].str());
    }
    std::vector<std::string> env;
    for (const auto& name : names) {
        std::string value = "placeholder";
        if (ends_with(name, "_PORT")) value = "6379";
        else if (ends_with(name, "_DSN")) value = "host=127.0.0.1 port=5432 dbname=sluice user=postgres";
        else if (ends_with(name, "_BROKERS")) value = "127.0.0.1:9092";
        else if (ends_with(name, "_HOST")) value = "127.0.0.1";
        else if (ends_with(name, "_LISTEN")) value = "127.0.0.1:8080";
        env.push_back(name + "=" + value);
    }
    return env;
}

}  // namespace

class Cli : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(std::filesystem::exists(it::sluice_binary())) << it::sluice_binary() << " was not built";
    }
};

TEST_F(Cli, version_exits_zero) {
    auto r = it::run_command({it::sluice_binary(), "--version"}, 10s);
    EXPECT_TRUE(r.status.ok()) << r.status.describe() << "\n" << r.output;
    EXPECT_FALSE(r.output.empty());
#ifdef SLUICE_VERSION
    EXPECT_NE(r.output.find(SLUICE_VERSION), std::string::npos) << r.output;
#endif
}

TEST_F(Cli, check_accepts_a_valid_config) {
    auto r = check(valid_config());
    EXPECT_FALSE(r.timed_out);
    EXPECT_TRUE(r.status.ok()) << r.status.describe() << "\n" << r.output;
}

TEST_F(Cli, check_names_the_json_path_of_every_error) {
    auto r = check(valid_config(R"( "bogus": true,)", R"("two")"));
    EXPECT_FALSE(r.timed_out);
    EXPECT_TRUE(r.status.exited && r.status.code == 1) << r.status.describe() << "\n" << r.output;
    EXPECT_NE(r.output.find("kafka.bogus"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("http.threads"), std::string::npos) << r.output;
}

TEST_F(Cli, check_accepts_the_shipped_example_configs) {
    const std::filesystem::path dir = std::filesystem::path(SLUICE_SOURCE_DIR) / "config";
    int checked = 0;
    if (std::filesystem::is_directory(dir)) {
        for (const auto& entry : std::filesystem::directory_iterator(dir)) {
            const auto ext = entry.path().extension();
            if (ext != ".json" && ext != ".jsonc") continue;
            const auto env = placeholder_env(it::read_file(entry.path()));
            auto r = it::run_command({it::sluice_binary(), "--config", entry.path().string(), "--check"}, 30s, {}, {},
                                     env);
            std::string env_text;
            for (const auto& e : env) env_text += " " + e;
            EXPECT_TRUE(r.status.ok()) << entry.path() << " (env:" << env_text << "): " << r.status.describe() << "\n"
                                       << r.output;
            ++checked;
        }
    }
    if (checked == 0) GTEST_SKIP() << "no example configs in " << dir;
}

TEST_F(Cli, describe_config_lists_every_key_as_text_and_as_json) {
    auto text = it::run_command({it::sluice_binary(), "--describe-config"}, 10s);
    ASSERT_TRUE(text.status.ok()) << text.status.describe() << "\n" << text.output;
    auto json_text = it::run_command({it::sluice_binary(), "--describe-config", "--json"}, 10s);
    ASSERT_TRUE(json_text.status.ok()) << json_text.status.describe() << "\n" << json_text.output;
    const auto keys = nlohmann::json::parse(json_text.output);
    ASSERT_TRUE(keys.is_array());

    // The text is a header line and then one line per key of the JSON, in the same order.
    std::vector<std::string> lines;
    std::istringstream in(text.output);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    ASSERT_EQ(lines.size(), keys.size() + 1) << text.output;
    EXPECT_EQ(lines[0].rfind("KEY", 0), 0u) << lines[0];
    std::set<std::string> paths;
    for (std::size_t i = 0; i < keys.size(); ++i) {
        const std::string path = keys[i].at("path");
        paths.insert(path);
        EXPECT_EQ(lines[i + 1].rfind(path + " ", 0), 0u) << lines[i + 1];
        EXPECT_FALSE(keys[i].at("description").get<std::string>().empty()) << path;
    }
    for (const char* path : {"kafka.brokers", "feature_sets[].fields.*.type", "feature_sets[].transforms[].op",
                             "feature_sets[].aggregations[].window", "feature_sets[].dedup.window",
                             "http.auth.api_keys[].scopes", "http.tls.cert_file", "http.rate_limit.burst",
                             "generator.keys", "memory.enabled", "log.level"})
        EXPECT_TRUE(paths.count(path)) << path << " is not listed";
}

// The shipped example shows every key outside feature_sets, and only keys the schema has
// (scripts/gen_config_docs.py --check also compares the values).
TEST_F(Cli, the_example_config_holds_every_key_of_the_schema_outside_feature_sets) {
    auto r = it::run_command({it::sluice_binary(), "--describe-config", "--json"}, 10s);
    ASSERT_TRUE(r.status.ok()) << r.status.describe() << "\n" << r.output;
    std::set<std::string> schema;
    for (const auto& key : nlohmann::json::parse(r.output)) {
        const std::string path = key.at("path");
        if (path.rfind("feature_sets", 0) != 0 && path.find("[]") == std::string::npos) schema.insert(path);
    }
    const auto example = nlohmann::json::parse(
        it::read_file(std::filesystem::path(SLUICE_SOURCE_DIR) / "config" / "sluice.example.json"), nullptr, true,
        /*ignore_comments=*/true);
    std::set<std::string> shown;
    const auto walk = [&](const auto& self, const nlohmann::json& node, const std::string& path) -> void {
        for (auto member = node.begin(); member != node.end(); ++member) {
            const std::string child = path.empty() ? member.key() : path + "." + member.key();
            if (child == "feature_sets") continue;
            shown.insert(child);
            // kafka.properties holds librdkafka's names, not the schema's.
            if (member->is_object() && child != "kafka.properties") self(self, *member, child);
        }
    };
    walk(walk, example, "");
    EXPECT_EQ(shown, schema);
}

// `sluice feast-definitions`: Python that parses, with an Entity per key, a FeatureView per set
// (its fields and aggregations with Feast's types, its TTL), the push sources and feature services.
TEST_F(Cli, feast_definitions_prints_a_feast_repository_module) {
    it::temp_dir dir("sluice-feast-");
    auto cfg = nlohmann::json::parse(valid_config(), nullptr, true, /*ignore_comments=*/true);
    cfg["feature_sets"][0]["aggregations"] = {{{"name", "spend_sum_1h"}, {"field", "spend"}, {"op", "sum"}, {"window", "1h"}}};
    cfg["feature_services"] = {{{"name", "ranker"}, {"description", "what the ranker reads"},
                                {"features", {"user_activity:clicks", "user_activity:spend_sum_1h"}}}};
    cfg["push_sources"] = {{{"name", "activity_push"}, {"feature_sets", {"user_activity"}}}};
    it::write_file(dir / "sluice.json", cfg.dump());
    auto r = it::run_command({it::sluice_binary(), "feast-definitions", "--config", (dir / "sluice.json").string()}, 30s);
    ASSERT_TRUE(r.status.ok()) << r.output;
    for (const std::string expected :
         {"user_id = Entity(name=\"user_id\", join_keys=[\"user_id\"]",
          "activity_push = PushSource(name=\"activity_push\"", "user_activity = FeatureView(",
          "ttl=timedelta(milliseconds=86400000)", "Field(name=\"clicks\", dtype=Int64)",
          "Field(name=\"spend_sum_1h\", dtype=Float64)", "source=activity_push",
          "ranker = FeatureService(", "user_activity[[\"clicks\", \"spend_sum_1h\"]]"})
        EXPECT_NE(r.output.find(expected), std::string::npos) << expected << "\n" << r.output;
    // It is Python: it parses.
    it::write_file(dir / "repo.py", r.output);
    auto parsed = it::run_command({"python3", "-c", "import ast,sys; ast.parse(open(sys.argv[1]).read())",
                                   (dir / "repo.py").string()},
                                  30s);
    EXPECT_TRUE(parsed.status.ok()) << parsed.output;
}
