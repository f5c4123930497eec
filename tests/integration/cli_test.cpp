// The command line of the README's CLI against the real binary: --version, and --check accepting a
// good config and naming the JSON path of every mistake in a bad one.

#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <set>

#include "integration/support/stack.hpp"

namespace it = sluice::it;
using namespace std::chrono_literals;

namespace {

// A complete config whose services do not need to exist: --check validates, it does not connect.
std::string valid_config(const std::string& extra_kafka = "", const std::string& http_threads = "1") {
    return R"({
  // comments are allowed (README, "Config")
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
