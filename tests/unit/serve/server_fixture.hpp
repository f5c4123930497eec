#pragma once
// Starts the real HTTP server on 127.0.0.1:0 with fake services, for wire tests.

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>

#include <nlohmann/json.hpp>

#include "mocks/mock_services.hpp"
#include "sluice/core/clock.hpp"
#include "sluice/serve/http_server.hpp"
#include "wire_client.hpp"

namespace sluice::testing {

// SHA-256 of "read-key" and "write-key".
inline constexpr const char* read_key_sha256 = "8578df6c579d44d3bf7caeada69ed9cbca30b318a50a0e60216b46760edf5477";
inline constexpr const char* write_key_sha256 = "9a7ac94eebad54f90bf2ee767e6765138c44b2ad6bd68e05938b5e7b0f4b232f";

inline field_config make_field(std::string name, field_type type) {
    field_config f;
    f.name = std::move(name);
    f.type = type;
    return f;
}

/// Two feature sets: user_activity (one field of every type, TTL 24 h) and short_lived (TTL 1 s).
inline config make_test_config() {
    config cfg;
    feature_set_config s;
    s.name = "user_activity";
    s.topic = "user-events";
    s.key_field = "user_id";
    s.event_time_field = "ts";
    s.fields = {make_field("clicks", field_type::int64),      make_field("spend", field_type::float64),
                make_field("active", field_type::boolean),    make_field("country", field_type::string),
                make_field("last_seen", field_type::timestamp), make_field("profile", field_type::json),
                make_field("raw", field_type::json),          make_field("nickname", field_type::string),
                make_field("ratio", field_type::float64)};
    cfg.feature_sets.push_back(s);

    feature_set_config t;
    t.name = "short_lived";
    t.topic = "short";
    t.key_field = "id";
    t.event_time_field = "ts";
    t.fields = {make_field("x", field_type::int64)};
    t.ttl_ms = 1000;
    cfg.feature_sets.push_back(t);

    cfg.http.listen = "127.0.0.1:0";
    cfg.http.threads = 2;
    cfg.http.body_limit_bytes = 1024;
    cfg.http.header_limit_bytes = 2048;
    cfg.http.read_timeout_ms = 300;
    cfg.http.idle_timeout_ms = 600;
    cfg.http.write_timeout_ms = 1000;
    return cfg;
}

/// An entry with a value of every type for user_activity.
inline latest_entry make_full_entry(std::string key, std::int64_t event_time_ms, std::int64_t ingested_at_ms) {
    latest_entry e;
    e.key = std::move(key);
    e.event_time_ms = event_time_ms;
    e.ingested_at_ms = ingested_at_ms;
    e.values = {value{std::int64_t{42}},
                value{12.5},
                value{true},
                value{std::string("DE")},
                value{std::int64_t{1763719200123}},  // 2025-11-21T10:00:00.123Z
                value{std::string(R"({"tier":"gold","tags":[1,2]})")},
                value{std::string("not json {")},
                value{},
                value{std::numeric_limits<double>::quiet_NaN()}};
    return e;
}

class HttpServerFixture : public ::testing::Test {
protected:
    /// Tests adjust the config here before the server starts.
    virtual void configure(config&) {}

    void SetUp() override {
        cfg_ = make_test_config();
        configure(cfg_);
        ctx_.cfg = &cfg_;
        ctx_.reader = &reader_;
        ctx_.health = &health_;
        server_ = make_http_server(ctx_);
        const status st = server_->start();
        ASSERT_TRUE(st.ok()) << st.message();
        ASSERT_NE(server_->port(), 0);
    }

    void TearDown() override {
        if (server_) server_->stop();
    }

    wire_client connect() { return wire_client(server_->port()); }

    /// One request on a fresh connection.
    std::optional<wire_client::response> get(std::string_view target,
                                             const std::vector<std::pair<std::string, std::string>>& headers = {}) {
        wire_client c = connect();
        return c.request(http::verb::get, target, headers);
    }

    static nlohmann::json body_json(const wire_client::response& res) {
        return nlohmann::json::parse(res.body(), nullptr, false);
    }

    static std::string error_code_of(const wire_client::response& res) {
        const auto j = body_json(res);
        if (!j.is_object() || !j.contains("error") || !j["error"].contains("code")) return "<no error body>";
        return j["error"]["code"].get<std::string>();
    }

    config cfg_;
    fake_feature_reader reader_;
    fake_health_source health_;
    serve_context ctx_;
    http_server_ptr server_;  // declared last: stopped and destroyed before the fakes
};

}  // namespace sluice::testing
