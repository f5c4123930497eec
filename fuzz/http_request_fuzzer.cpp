// libFuzzer target: arbitrary bytes as they would arrive on a connection, through the same steps
// a session takes (Beast's request parser with the server's limits, the framing checks, the
// request size bound), then the dispatcher: router, API key auth, rate limit and the handlers,
// with the test doubles of tests/mocks/ behind them. Pipelined requests in one input are each
// dispatched. Every request must be answered exactly once, with a status the API uses and, for
// JSON, a body that parses. The health source is the mocks' fake; the reader is a stateless one.

#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string_view>

#include <boost/beast/http/parser.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "http/dispatch.hpp"
#include "http/framing.hpp"
#include "http/routes.hpp"
#include "mocks/mock_services.hpp"
#include "sluice/core/clock.hpp"

namespace {

using namespace sluice;
using namespace sluice::serve;

constexpr std::uint32_t header_limit = 2048;
constexpr std::uint64_t body_limit = 4096;
constexpr std::uint64_t request_byte_limit = header_limit + 2 * body_limit + 65536;  // as the session
constexpr int max_requests_per_input = 8;

// SHA-256 of "fuzz-key": the seed corpus uses it, so the fuzzer starts past the key check.
constexpr const char* fuzz_key_sha256 = "231e9b2f757db8d48ecd0711b60135e1cc57a3a807be9dc12638856f17a7872c";

// Answers every read inline from one fixed entry (key "42"), remembering nothing: the mocks'
// fake_feature_reader records every key asked for, which would grow for as long as the fuzzer
// runs.
class fixed_reader final : public feature_reader {
public:
    explicit fixed_reader(latest_entry e) : entry_(std::move(e)) {}
    void get_latest(std::uint32_t set_index, std::string key, latest_callback done) override {
        if (set_index == 0 && key == entry_.key) return done(std::optional<latest_entry>{entry_});
        if (key == "fail") return done(result<std::optional<latest_entry>>::failure("store unavailable"));
        done(std::optional<latest_entry>{});
    }
    void get_as_of(std::uint32_t set_index, std::string key, std::int64_t, latest_callback done) override {
        get_latest(set_index, std::move(key), std::move(done));
    }

private:
    latest_entry entry_;
};

class null_telemetry final : public telemetry {
public:
    feature_set_figures figures(std::uint32_t) const override { return {}; }
    void observe_request(std::string_view, std::string_view, int, double) override {}
    std::string render_metrics() override { return "# no metrics\n"; }
};

field_config field(std::string name, field_type type) {
    field_config f;
    f.name = std::move(name);
    f.type = type;
    return f;
}

config make_config() {
    config cfg;
    feature_set_config s;
    s.name = "user_activity";
    s.topic = "user-events";
    s.key_field = "user_id";
    s.event_time_field = "ts";
    s.fields = {field("clicks", field_type::int64), field("spend", field_type::float64),
                field("active", field_type::boolean), field("country", field_type::string),
                field("last_seen", field_type::timestamp), field("profile", field_type::json)};
    s.ttl_ms = 86400000;
    cfg.feature_sets.push_back(s);
    cfg.http.body_limit_bytes = body_limit;
    cfg.http.header_limit_bytes = header_limit;
    cfg.http.max_lookup_keys = 16;
    return cfg;
}

latest_entry fixed_entry() {
    latest_entry e;
    e.key = "42";
    e.event_time_ms = now_ms();
    e.ingested_at_ms = e.event_time_ms;
    e.values = {value{std::int64_t{7}}, value{1.5}, value{true}, value{std::string("DE")},
                value{std::int64_t{1763719200123}}, value{std::string(R"({"a":[1,2]})")}};
    return e;
}

// Everything built once: the fuzzer calls the target millions of times.
struct harness {
    config cfg = make_config();
    fixed_reader reader{fixed_entry()};
    testing::fake_health_source health;
    null_telemetry metrics;
    serve_context ctx;
    std::unique_ptr<dispatcher> open;    // auth off
    std::unique_ptr<dispatcher> keyed;   // auth on, with a rate limit

    harness() {
        spdlog::set_level(spdlog::level::off);
        ctx.cfg = &cfg;
        ctx.reader = &reader;
        ctx.health = &health;
        ctx.metrics = &metrics;
        open = std::make_unique<dispatcher>(make_routes(ctx), api_key_auth({}));
        rate_limit_config rl;
        rl.requests_per_sec = 1000;
        rl.burst = 1000;
        keyed = std::make_unique<dispatcher>(
            make_routes(ctx), api_key_auth({{"fuzzer", fuzz_key_sha256, {"read", "write", "admin"}}}), rl, 64);
    }
};

[[noreturn]] void fail(const char* what, const request& req) {
    std::fprintf(stderr, "http fuzz: %s (%.*s %.*s)\n", what, static_cast<int>(req.method_string().size()),
                 req.method_string().data(), static_cast<int>(req.target().size()), req.target().data());
    std::abort();
}

// Dispatches and waits for the single answer, then checks its shape.
void dispatch_and_check(const dispatcher& d, const request& req) {
    std::mutex mutex;
    std::condition_variable cv;
    int answers = 0;
    response res;
    const std::string_view route = d.dispatch(req, std::string_view("\x7f\0\0\x01", 4), "fuzz", [&](response r) {
        std::lock_guard lock(mutex);
        if (++answers == 1) res = std::move(r);
        cv.notify_all();
    });
    std::unique_lock lock(mutex);
    if (!cv.wait_for(lock, std::chrono::seconds(2), [&] { return answers > 0; })) fail("no answer", req);
    if (answers != 1) fail("more than one answer", req);
    if (route.empty()) fail("empty route label", req);
    const unsigned status = res.result_int();
    if (status < 200 || status > 599) fail("status out of range", req);
    if (res[http::field::content_type] == "application/json" && !nlohmann::json::accept(res.body()))
        fail("a JSON response whose body does not parse", req);
    if (status == 405 && res[http::field::allow].empty()) fail("405 without Allow", req);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static harness h;
    boost::asio::const_buffer input(data, size);
    for (int n = 0; n < max_requests_per_input && input.size() > 0; ++n) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(header_limit);
        parser.body_limit(body_limit);
        parser.eager(true);
        boost::beast::error_code ec;
        std::uint64_t consumed = 0;
        bool framing_checked = false;
        try {
            while (!parser.is_done()) {
                if (input.size() == 0) return 0;  // the rest never arrived
                const std::size_t used = parser.put(input, ec);
                input += used;
                consumed += used;
                if (consumed > request_byte_limit) return 0;  // the session answers 413 and closes
                if (ec == http::error::need_more) {
                    if (used == 0) return 0;  // what it needs never arrived
                    ec = {};
                    continue;
                }
                if (ec) return 0;  // the session answers 400/413/431 and closes
                if (used == 0 && !parser.is_done()) return 0;
                if (parser.is_header_done() && !framing_checked) {
                    framing_checked = true;
                    if (!framing_error(parser.get()).empty()) return 0;  // 400, connection closed
                }
            }
        } catch (const std::exception&) {
            return 0;  // Beast 1.74 throws on some inputs; the server ends that connection
        }
        if (!framing_checked && !framing_error(parser.get()).empty()) return 0;
        const request& req = parser.get();
        (void)method_label(req.method());
        dispatch_and_check(*h.open, req);
        dispatch_and_check(*h.keyed, req);
        if (!req.keep_alive()) return 0;
    }
    return 0;
}
