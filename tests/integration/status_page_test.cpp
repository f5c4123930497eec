// The status page (GET /) and the OpenAPI document (GET /openapi.json) against the real binary:
// the page is loaded in headless Chromium while the embedded broker and the generator feed a
// memory-only daemon, and its charts must have drawn live data; the document must describe
// every route the daemon serves.

#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "integration/support/daemon.hpp"
#include "integration/support/net.hpp"
#include "integration/support/process.hpp"
#include "integration/support/temp_dir.hpp"
#include "integration/support/wait.hpp"

namespace it = sluice::it;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

// Every route of the daemon: method, pattern as the OpenAPI document names it, a concrete target
// to probe it with, and the scope it needs ("" = public).
struct route_case {
    const char* method;
    const char* pattern;
    const char* target;
    const char* scope;
};

const std::vector<route_case>& served_routes() {
    static const std::vector<route_case> routes = {
        {"GET", "/v1/features/{set}/{key}", "/v1/features/user_activity/u1", "read"},
        {"POST", "/v1/features/lookup", "/v1/features/lookup", "read"},
        {"POST", "/get-online-features", "/get-online-features", "read"},
        {"POST", "/push", "/push", "write"},
        {"POST", "/write-to-online-store", "/write-to-online-store", "write"},
        {"GET", "/v1/features/{set}/{key}/history", "/v1/features/user_activity/u1/history", "read"},
        {"POST", "/v1/ingest/{set}", "/v1/ingest/user_activity", "write"},
        {"POST", "/v1/training-sets", "/v1/training-sets", "read"},
        {"GET", "/v1/feature-sets", "/v1/feature-sets", "admin"},
        {"GET", "/v1/feature-sets/{set}", "/v1/feature-sets/user_activity", "admin"},
        {"GET", "/healthz", "/healthz", ""},
        {"GET", "/health", "/health", ""},
        {"GET", "/readyz", "/readyz", ""},
        {"GET", "/metrics", "/metrics", "admin"},
        {"GET", "/openapi.json", "/openapi.json", ""},
        {"GET", "/", "/", ""},
        {"POST", "/v1/admin/reload", "/v1/admin/reload", "admin"},
        {"GET", "/v1/admin/config", "/v1/admin/config", "admin"},
        {"GET", "/v1/admin/activity", "/v1/admin/activity", "admin"},
        {"GET", "/v1/feature-sets/{set}/quality", "/v1/feature-sets/user_activity/quality", "admin"},
        {"GET", "/v1/admin/quarantine/{set}", "/v1/admin/quarantine/user_activity", "admin"},
        {"POST", "/v1/admin/quarantine/{set}/release", "/v1/admin/quarantine/user_activity/release", "admin"},
    };
    return routes;
}

// SHA-256 of "status-page-admin-key" (the config stores digests only).
constexpr const char* k_admin_key = "status-page-admin-key";
constexpr const char* k_admin_sha256 = "d50c1465f1f21d6996bc60486ca9ae616ab23f9a01bca9112429f0feba4ea1b8";

// A memory-only daemon fed by the embedded broker and the event generator (like config/minimal.json).
json status_config(int http_port, bool generator, const json& api_keys = json::array()) {
    json cfg = {
        {"kafka", {{"brokers", "embedded"}}},
        {"feature_sets",
         json::array({{{"name", "user_activity"},
                       {"topic", "user-events"},
                       {"key", "user_id"},
                       {"event_time", "ts"},
                       {"fields",
                        {{"clicks", {{"type", "int"}, {"required", true}}},
                         {"spend", {{"type", "double"}, {"min", 0}}},
                         {"country", {{"type", "string"}, {"default", "??"}}}}}}})},
        {"http", {{"listen", "127.0.0.1:" + std::to_string(http_port)}}},
        {"generator", {{"enabled", generator}, {"events_per_sec", 200}, {"keys", 100}}},
    };
    if (!api_keys.empty()) cfg["http"]["auth"] = {{"api_keys", api_keys}};
    return cfg;
}

std::string header(const it::http_response& r, const std::string& name) {
    auto found = r.headers.find(name);
    return found == r.headers.end() ? std::string() : found->second;
}

std::filesystem::path build_dir() { return std::filesystem::path(it::sluice_binary()).parent_path(); }

bool have_chromium() { return it::run_command({"sh", "-c", "command -v chromium"}, 10s).status.ok(); }

// Loads the page in headless Chromium with a virtual-time budget (the page's 2 s polls run at
// once in virtual time; the requests themselves are real) and returns the DOM it then has.
// With a screenshot path, takes the screenshot instead and returns Chromium's output.
std::string run_chromium(int port, const std::filesystem::path& profile, int virtual_ms,
                         const std::filesystem::path& screenshot = {}) {
    const std::filesystem::path out = profile / (screenshot.empty() ? "dom.html" : "screenshot.log");
    std::string cmd = "exec chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-extensions"
                      " --user-data-dir='" + (profile / "profile").string() + "'" +
                      " --virtual-time-budget=" + std::to_string(virtual_ms);
    if (screenshot.empty())
        cmd += " --dump-dom";
    else
        cmd += " --window-size=1280,900 --screenshot='" + screenshot.string() + "'";
    cmd += " http://127.0.0.1:" + std::to_string(port) + "/ >'" + out.string() + "' 2>'" +
           (profile / "chromium.err").string() + "'";
    const auto r = it::run_command({"sh", "-c", cmd}, 40s);
    EXPECT_FALSE(r.timed_out) << "chromium did not finish within 40 s";
    EXPECT_TRUE(r.status.ok()) << "chromium: " << r.status.describe() << "\n"
                               << it::file_tail(profile / "chromium.err", 4096);
    return it::read_file(out);
}

// data-points of every chart canvas, by chart name ("throughput", ...), in page order.
std::vector<std::pair<std::string, int>> chart_points(const std::string& dom) {
    static const std::regex canvas(R"(<canvas\b[^>]*>)");
    static const std::regex chart(R"re(data-chart="([a-z_]+)")re");
    static const std::regex points(R"re(data-points="(\d+)")re");
    std::vector<std::pair<std::string, int>> out;
    for (std::sregex_iterator m(dom.begin(), dom.end(), canvas), end; m != end; ++m) {
        const std::string tag = m->str();
        std::smatch c, p;
        if (!std::regex_search(tag, c, chart)) continue;
        const int n = std::regex_search(tag, p, points) ? std::stoi(p[1].str()) : -1;
        out.emplace_back(c[1].str(), n);
    }
    return out;
}

// The text of the catalog table's cell with this data-figure in the feature set's row.
std::string table_figure(const std::string& dom, const std::string& set, const std::string& figure) {
    const std::regex row("<tr data-feature-set=\"" + set + "\">(.*?)</tr>");
    std::smatch r;
    if (!std::regex_search(dom, r, row)) return {};
    const std::string cells = r[1].str();
    const std::regex cell("<td[^>]*data-figure=\"" + figure + "\"[^>]*>([^<]*)</td>");
    std::smatch c;
    return std::regex_search(cells, c, cell) ? c[1].str() : std::string();
}

}  // namespace

class StatusPage : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(std::filesystem::exists(it::sluice_binary())) << it::sluice_binary() << " was not built";
    }
};

TEST_F(StatusPage, charts_draw_live_figures_in_chromium) {
    ASSERT_TRUE(have_chromium()) << "chromium is not installed (scripts/setup.sh installs it)";
    const auto started = std::chrono::steady_clock::now();
    const int port = it::free_port();
    it::daemon_process daemon(status_config(port, /*generator=*/true));
    daemon.start();
    ASSERT_TRUE(daemon.wait_http_ready(port, 20s)) << daemon.log_tail();

    // The page is served as it is, public, and fetches nothing from elsewhere.
    const auto page = it::http_get(port, "/");
    ASSERT_EQ(page.status, 200) << page.error << page.body;
    EXPECT_EQ(header(page, "content-type"), "text/html; charset=utf-8");
    EXPECT_EQ(header(page, "cache-control"), "no-cache");
    EXPECT_NE(page.body.find("data-points"), std::string::npos);
    EXPECT_EQ(page.body.find("http://"), std::string::npos) << "the page refers to an external URL";
    EXPECT_EQ(page.body.find("https://"), std::string::npos) << "the page refers to an external URL";

    // Wait until the generator's records show in the catalog, with a known lag and freshness, so
    // that every chart has something to draw.
    json last;
    const bool flowing = it::wait_until(20s, [&] {
        const auto r = it::http_get(port, "/v1/feature-sets", 2s);
        if (r.status != 200) return false;
        last = json::parse(r.body, nullptr, false);
        if (!last.is_object() || !last.contains("feature_sets") || !last["feature_sets"].is_array() ||
            last["feature_sets"].empty())
            return false;
        const json& set = last["feature_sets"][0];
        if (!set.is_object() || !set.contains("figures") || !set["figures"].is_object()) return false;
        const json& f = set["figures"];
        auto number = [&f](const char* name) { return f.contains(name) && f[name].is_number(); };
        return number("records_in") && f["records_in"].get<double>() > 0 && number("consumer_lag") &&
               number("freshness_ms");
    });
    ASSERT_TRUE(flowing) << "no records_in, consumer_lag and freshness_ms in /v1/feature-sets within 20 s; last: "
                         << last.dump() << "\n" << daemon.log_tail();
    ASSERT_TRUE(it::wait_until(20s, [&] { return it::http_get(port, "/readyz", 2s).status == 200; }))
        << "not ready within 20 s: " << it::http_get(port, "/readyz").body;

    it::temp_dir browser("sluice-chromium-");
    // 30 s of virtual time: 15 polls of the catalog, so every chart gets many points.
    const std::string dom = run_chromium(port, browser.path(), 30000);
    const auto charts = chart_points(dom);
    const std::set<std::string> expected = {"throughput", "errors", "lag", "freshness"};
    std::set<std::string> seen;
    for (const auto& [name, points] : charts) {
        seen.insert(name);
        EXPECT_GT(points, 1) << "chart '" << name << "' drew " << points << " point(s)";
    }
    EXPECT_EQ(seen, expected) << "charts in the page: " << charts.size();
    EXPECT_EQ(charts.size(), expected.size()) << "one feature set: one chart of each kind";

    const std::string records_in = table_figure(dom, "user_activity", "records_in");
    ASSERT_FALSE(records_in.empty()) << "the catalog table has no row for user_activity:\n" << dom.substr(0, 4000);
    std::string digits;
    for (char c : records_in)
        if (c >= '0' && c <= '9') digits += c;
    ASSERT_FALSE(digits.empty()) << "records_in cell: " << records_in;
    EXPECT_GT(std::stoll(digits), 0) << "records_in cell: " << records_in;
    EXPECT_NE(dom.find("<td class=\"name\">user_activity</td>"), std::string::npos);
    EXPECT_NE(dom.find("class=\"badge ready\""), std::string::npos) << "readiness badge not 'ready'";
    EXPECT_TRUE(std::regex_search(dom, std::regex(R"re(id="server-time">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)re")))
        << "server time not shown";
    EXPECT_TRUE(std::regex_search(dom, std::regex(R"re(id="config-sha"[^>]*>[0-9a-f]{12}<)re")))
        << "the running config's hash not shown";
    EXPECT_NE(dom.find("activity log unavailable: the activity log needs PostgreSQL"), std::string::npos)
        << "the activity panel says why it is empty without PostgreSQL";
    EXPECT_NE(dom.find("<td class=\"name\">user_activity</td><td>(no expectations)</td>"), std::string::npos)
        << "the quality table has the set's row";
    EXPECT_NE(dom.find("<form id=\"auth\" class=\"auth\" hidden"), std::string::npos)
        << "the API key form shows although auth is off";

    const std::filesystem::path shot = build_dir() / "status_page.png";
    std::filesystem::remove(shot);
    run_chromium(port, browser.path(), 30000, shot);
    ASSERT_TRUE(std::filesystem::exists(shot)) << "no screenshot at " << shot;
    EXPECT_GT(std::filesystem::file_size(shot), 10000u) << "a blank screenshot?";
    std::cout << "status page screenshot: " << shot.string() << "\n";
    std::cout << "status page test took " << it::seconds_since(started) << " s\n";
}

TEST_F(StatusPage, page_asks_for_an_api_key_when_the_catalog_needs_one) {
    ASSERT_TRUE(have_chromium()) << "chromium is not installed (scripts/setup.sh installs it)";
    const int port = it::free_port();
    const json keys = json::array({{{"name", "ops"}, {"sha256", k_admin_sha256}, {"scopes", json::array({"admin"})}}});
    it::daemon_process daemon(status_config(port, /*generator=*/false, keys));
    daemon.start();
    ASSERT_TRUE(daemon.wait_http_ready(port, 20s)) << daemon.log_tail();

    // The page and the document stay public; the catalog does not.
    EXPECT_EQ(it::http_get(port, "/").status, 200);
    EXPECT_EQ(it::http_get(port, "/openapi.json").status, 200);
    const auto anonymous = it::http_get(port, "/v1/feature-sets");
    EXPECT_EQ(anonymous.status, 401) << anonymous.body;
    const auto admin = it::http_request(port, "GET", "/v1/feature-sets", {}, {{"X-API-Key", k_admin_key}});
    EXPECT_EQ(admin.status, 200) << admin.body;

    it::temp_dir browser("sluice-chromium-");
    const std::string dom = run_chromium(port, browser.path(), 6000);
    ASSERT_NE(dom.find("<form id=\"auth\""), std::string::npos) << dom.substr(0, 4000);
    EXPECT_EQ(dom.find("<form id=\"auth\" class=\"auth\" hidden"), std::string::npos)
        << "the API key form stays hidden after a 401";
    EXPECT_NE(dom.find("needs an API key with the admin scope"), std::string::npos);
}

TEST_F(StatusPage, openapi_document_describes_every_route) {
    const int port = it::free_port();
    it::daemon_process daemon(status_config(port, /*generator=*/false));
    daemon.start();
    ASSERT_TRUE(daemon.wait_http_ready(port, 20s)) << daemon.log_tail();

    const auto r = it::http_get(port, "/openapi.json");
    ASSERT_EQ(r.status, 200) << r.error << r.body;
    EXPECT_EQ(header(r, "content-type"), "application/json");
    const json doc = json::parse(r.body, nullptr, false);
    ASSERT_FALSE(doc.is_discarded()) << "not JSON: " << r.body.substr(0, 200);
    ASSERT_TRUE(doc.contains("openapi") && doc["openapi"].is_string());
    EXPECT_TRUE(std::regex_match(doc["openapi"].get<std::string>(), std::regex(R"(3\.0\.\d+)"))) << doc["openapi"];
    ASSERT_TRUE(doc.contains("paths") && doc["paths"].is_object());

    // Security schemes: bearer and the X-API-Key header.
    ASSERT_TRUE(doc.contains("components") && doc["components"].contains("securitySchemes") &&
                doc["components"].contains("schemas"));
    const json& schemes = doc["components"]["securitySchemes"];
    bool bearer = false, header_key = false;
    for (const json& s : schemes) {
        if (s.value("type", "") == "http" && s.value("scheme", "") == "bearer") bearer = true;
        if (s.value("type", "") == "apiKey" && s.value("in", "") == "header" && s.value("name", "") == "X-API-Key")
            header_key = true;
    }
    EXPECT_TRUE(bearer) << schemes.dump();
    EXPECT_TRUE(header_key) << schemes.dump();
    EXPECT_TRUE(doc["components"]["schemas"].contains("Error")) << "no error envelope schema";

    std::set<std::string> documented;
    for (auto path = doc["paths"].begin(); path != doc["paths"].end(); ++path)
        for (auto op = path->begin(); op != path->end(); ++op)
            documented.insert(it::lower(op.key()) + " " + path.key());

    for (const route_case& rc : served_routes()) {
        SCOPED_TRACE(std::string(rc.method) + " " + rc.pattern);
        const std::string method = it::lower(rc.method);
        ASSERT_TRUE(documented.count(method + " " + rc.pattern)) << "route missing from /openapi.json";
        documented.erase(method + " " + rc.pattern);
        const json& op = doc["paths"][rc.pattern][method];
        EXPECT_TRUE(op.contains("responses") && !op["responses"].empty());
        const std::string description = op.value("description", "");
        if (std::string(rc.scope).empty()) {
            EXPECT_TRUE(op.contains("security") && op["security"].empty()) << "a public route must not need a key";
        } else {
            EXPECT_NE(description.find("Scope: `" + std::string(rc.scope) + "`"), std::string::npos) << description;
        }

        // The daemon serves it: no "no such route" and no 405 (a 404 for an unknown key is fine).
        const auto probe = it::http_request(port, rc.method, rc.target, rc.method == std::string("POST") ? "{}" : "",
                                            {{"Content-Type", "application/json"}});
        ASSERT_NE(probe.status, 0) << probe.error;
        EXPECT_NE(probe.status, 405) << probe.body;
        const json body = json::parse(probe.body, nullptr, false);
        const bool no_route = probe.status == 404 && !body.is_discarded() && body.contains("error") &&
                              body["error"].value("code", "") == "not_found";
        EXPECT_FALSE(no_route) << "the daemon does not serve " << rc.method << " " << rc.target << ": " << probe.body;
    }
    EXPECT_TRUE(documented.empty()) << "documented but not in the test's route list: " << *documented.begin();
}
