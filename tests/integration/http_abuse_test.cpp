// The real daemon's HTTP API under abuse: oversize bodies and headers, slow senders, thousands
// of idle connections, request smuggling shapes, chunk extension and trailer bombs, attempts to
// get past the API key check, rate limits, the connection cap and TLS. After every case the
// daemon must still answer GET /healthz and a normal feature read. Memory-only daemons with the
// embedded broker and the event generator: no PostgreSQL or Redis needed. Every wait is bounded.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "integration/support/daemon.hpp"
#include "integration/support/net.hpp"
#include "integration/support/process.hpp"
#include "integration/support/temp_dir.hpp"
#include "integration/support/wait.hpp"

namespace it = sluice::it;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

using steady = std::chrono::steady_clock;

// SHA-256 of "read-key" and "write-key".
constexpr const char* read_key_sha256 = "8578df6c579d44d3bf7caeada69ed9cbca30b318a50a0e60216b46760edf5477";
constexpr const char* write_key_sha256 = "9a7ac94eebad54f90bf2ee767e6765138c44b2ad6bd68e05938b5e7b0f4b232f";
// SHA-256 of "other-key".
constexpr const char* other_key_sha256 = "580843d03d2216ff1a275d0991bad66e4d1af871171d929e9de604b7959f9bca";
constexpr int read_timeout_ms = 1500;

// One TCP connection to 127.0.0.1, driven byte for byte by the test (POSIX, no HTTP library).
class raw_conn {
public:
    explicit raw_conn(int port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) return;
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(static_cast<std::uint16_t>(port));
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            ::close(fd_);
            fd_ = -1;
            return;
        }
        const int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    ~raw_conn() {
        if (fd_ >= 0) ::close(fd_);
    }
    raw_conn(const raw_conn&) = delete;
    raw_conn& operator=(const raw_conn&) = delete;

    bool connected() const { return fd_ >= 0; }

    /// False once the peer has closed or reset the connection.
    bool send(std::string_view bytes) {
        while (!bytes.empty()) {
            const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n <= 0) return false;
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }

    struct response {
        int status = 0;  // 0: none (closed or timed out)
        std::string head;
        std::string body;
        std::string header(const std::string& name) const {
            const std::string needle = "\r\n" + it::lower(name) + ":";
            const std::string low = it::lower(head);
            const auto at = low.find(needle);
            if (at == std::string::npos) return {};
            auto start = at + needle.size();
            while (start < head.size() && head[start] == ' ') ++start;
            return head.substr(start, head.find("\r\n", start) - start);
        }
    };

    /// One response (Content-Length framed, as the daemon sends them), within `limit`.
    response read_response(std::chrono::milliseconds limit = 5000ms) {
        response r;
        const auto deadline = steady::now() + limit;
        std::size_t head_end = std::string::npos;
        while ((head_end = buf_.find("\r\n\r\n")) == std::string::npos)
            if (!fill(deadline)) return r;
        r.head = buf_.substr(0, head_end + 2);
        std::size_t length = 0;
        if (const std::string cl = r.header("content-length"); !cl.empty()) length = std::stoul(cl);
        while (buf_.size() < head_end + 4 + length)
            if (!fill(deadline)) return r;
        r.body = buf_.substr(head_end + 4, length);
        buf_.erase(0, head_end + 4 + length);
        if (r.head.rfind("HTTP/1.", 0) == 0 && r.head.size() > 12) r.status = std::atoi(r.head.c_str() + 9);
        return r;
    }

    struct close_report {
        bool closed = false;
        std::size_t bytes = 0;
        std::chrono::milliseconds after{0};
    };
    /// Reads until the peer closes (EOF or reset) or `limit` passes.
    close_report wait_closed(std::chrono::milliseconds limit) {
        close_report r;
        const auto start = steady::now();
        r.bytes = buf_.size();
        buf_.clear();
        while (true) {
            const std::size_t before = buf_.size();
            const bool more = fill(start + limit);
            r.bytes += buf_.size() - before;
            buf_.clear();
            if (!more) break;
        }
        r.after = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
        r.closed = eof_;
        return r;
    }

private:
    // Appends what arrives before the deadline; false on EOF, error or timeout.
    bool fill(steady::time_point deadline) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
        if (left <= 0) return false;
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
        char chunk[16384];
        const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
        if (n <= 0) {
            eof_ = true;
            return false;
        }
        buf_.append(chunk, static_cast<std::size_t>(n));
        return true;
    }

    int fd_ = -1;
    std::string buf_;
    bool eof_ = false;
};

std::string request(const std::string& method, const std::string& target, const std::string& extra_headers = {},
                    const std::string& body = {}) {
    std::string r = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra_headers;
    if (!body.empty() || method == "POST") r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    return r + "\r\n" + body;
}

// A memory-only daemon: the embedded broker, one feature set, the generator writing key
// "user-0" so that feature reads have something to find.
json daemon_config(int port, const json& http_extra) {
    json http = {{"listen", "127.0.0.1:" + std::to_string(port)},
                 {"threads", 2},
                 {"body_limit_bytes", 4096},
                 {"header_limit_bytes", 2048},
                 {"read_timeout_ms", read_timeout_ms},
                 {"idle_timeout_ms", 30000}};
    http.update(http_extra);
    return {{"kafka", {{"brokers", "embedded"}}},
            {"feature_sets",
             {{{"name", "user_activity"},
               {"topic", "user-events"},
               {"key", "user_id"},
               {"event_time", "ts"},
               {"fields", {{"clicks", {{"type", "int"}, {"required", true}}}}}}}},
            {"http", http},
            {"generator", {{"enabled", true}, {"events_per_sec", 20}, {"keys", 1}}},
            {"log", {{"level", "info"}}}};
}

const std::string read_auth = "Authorization: Bearer read-key\r\n";

const json auth_keys = {
    {"api_keys", json::array({{{"name", "reader"}, {"sha256", read_key_sha256}, {"scopes", {"read"}}},
                              {{"name", "writer"}, {"sha256", write_key_sha256}, {"scopes", {"write"}}}})}};

constexpr const char* feature_target = "/v1/features/user_activity/user-0";

// Enough descriptors for a few thousand connections, for this process and the daemons it starts.
void raise_open_file_limit() {
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
    const rlim_t wanted = 8192;
    if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < wanted) {
        lim.rlim_cur = lim.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, lim.rlim_max);
        setrlimit(RLIMIT_NOFILE, &lim);
    }
}

// A started daemon on a free port, with the generated key readable.
struct running_daemon {
    int port = it::free_port();
    std::unique_ptr<it::daemon_process> proc;
    std::string auth_header;  // sent with feature reads

    bool start(const json& http_extra, std::string auth = {}) {
        auth_header = std::move(auth);
        proc = std::make_unique<it::daemon_process>(daemon_config(port, http_extra));
        proc->start();
        if (!proc->wait_http_ready(port, 30s)) return false;
        return it::wait_until(20s, [&] { return feature_read().status == 200; });
    }
    raw_conn::response feature_read() {
        raw_conn c(port);
        if (!c.connected() || !c.send(request("GET", feature_target, auth_header))) return {};
        return c.read_response();
    }
    raw_conn::response get(const std::string& target, const std::string& headers = {}) {
        raw_conn c(port);
        if (!c.connected() || !c.send(request("GET", target, headers))) return {};
        return c.read_response();
    }
    // The daemon still runs, answers /healthz and serves a normal feature read.
    void expect_alive(const std::string& after) {
        EXPECT_TRUE(proc->running()) << "the daemon exited after: " << after;
        EXPECT_EQ(get("/healthz").status, 200) << "after: " << after;
        const auto r = feature_read();
        EXPECT_EQ(r.status, 200) << "after: " << after << "\n" << r.body;
        EXPECT_NE(r.body.find("\"user-0\""), std::string::npos) << r.body;
    }
};

// The daemon answered `status` and then closed the connection.
void expect_answer_then_close(raw_conn& c, int status, const std::string& what) {
    const auto r = c.read_response();
    EXPECT_EQ(r.status, status) << what << "\n" << r.head << r.body;
    const auto closed = c.wait_closed(5000ms);
    EXPECT_TRUE(closed.closed) << what << ": the connection stayed open";
}

// One daemon with auth on, shared by the cases that do not change its configuration.
class HttpAbuse : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        raise_open_file_limit();
        daemon_ = new running_daemon;
        if (!daemon_->start({{"auth", auth_keys}}, "Authorization: Bearer read-key\r\n")) {
            ADD_FAILURE() << "the daemon did not start:\n" << daemon_->proc->log_tail();
        }
    }
    static void TearDownTestSuite() {
        if (daemon_ && daemon_->proc) daemon_->proc->terminate(20s);
        delete daemon_;
        daemon_ = nullptr;
    }
    void SetUp() override {
        ASSERT_TRUE(daemon_ && daemon_->proc && daemon_->proc->running()) << "no daemon";
    }
    running_daemon& d() { return *daemon_; }
    int port() { return daemon_->port; }
    static inline running_daemon* daemon_ = nullptr;
};

TEST_F(HttpAbuse, OversizeBodyIs413) {
    raw_conn c(port());
    ASSERT_TRUE(c.send("POST /v1/features/lookup HTTP/1.1\r\nHost: x\r\n" + read_auth +
                       "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n" + std::string(8192, 'a')));
    expect_answer_then_close(c, 413, "Content-Length over the body limit");

    raw_conn chunked(port());
    std::string body = "POST /v1/features/lookup HTTP/1.1\r\nHost: x\r\n" + read_auth +
                       "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 8; ++i) body += "400\r\n" + std::string(1024, 'b') + "\r\n";
    chunked.send(body);
    expect_answer_then_close(chunked, 413, "chunked body over the body limit");
    d().expect_alive("oversize bodies");
}

TEST_F(HttpAbuse, OversizeHeaderIs431) {
    raw_conn c(port());
    c.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(6000, 'h') + "\r\n\r\n");
    expect_answer_then_close(c, 431, "a 6 KB header field");

    raw_conn many(port());
    std::string lines;
    for (int i = 0; i < 400; ++i) lines += "X-F" + std::to_string(i) + ": v\r\n";
    many.send("GET /healthz HTTP/1.1\r\nHost: x\r\n" + lines + "\r\n");
    expect_answer_then_close(many, 431, "400 small header fields");
    d().expect_alive("oversize headers");
}

TEST_F(HttpAbuse, SlowlorisIsClosedAtTheReadTimeout) {
    raw_conn c(port());
    const auto start = steady::now();
    ASSERT_TRUE(c.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "));
    bool cut = false;
    while (steady::now() - start < std::chrono::milliseconds(read_timeout_ms) * 4) {
        if (!c.send("x")) {
            cut = true;
            break;
        }
        const auto closed = c.wait_closed(100ms);  // one byte every 100 ms
        if (closed.closed) {
            cut = true;
            break;
        }
    }
    const auto after = steady::now() - start;
    EXPECT_TRUE(cut) << "a header trickled byte by byte was never cut off";
    EXPECT_GE(after, std::chrono::milliseconds(read_timeout_ms) - 200ms);
    d().expect_alive("a slowloris client");
}

TEST_F(HttpAbuse, TwoThousandIdleConnectionsDoNotStopService) {
    // Each connection makes one keep-alive request and then sits idle (idle_timeout is 30 s).
    constexpr int count = 2000;
    std::vector<std::unique_ptr<raw_conn>> idle;
    idle.reserve(count);
    const auto deadline = steady::now() + 30s;
    const std::string probe = request("GET", "/healthz");
    for (int i = 0; i < count && steady::now() < deadline; ++i) {
        auto c = std::make_unique<raw_conn>(port());
        ASSERT_TRUE(c->connected()) << "connection " << i << " failed";
        ASSERT_TRUE(c->send(probe));
        idle.push_back(std::move(c));
    }
    ASSERT_EQ(idle.size(), static_cast<std::size_t>(count)) << "could not open the connections in time";
    int answered = 0;
    for (auto& c : idle)
        if (steady::now() < deadline && c->read_response(5000ms).status == 200) ++answered;
    EXPECT_EQ(answered, count);

    d().expect_alive("2000 idle connections");
    // The idle connections are still open and still served.
    for (std::size_t i : {std::size_t{0}, idle.size() / 2, idle.size() - 1}) {
        ASSERT_TRUE(idle[i]->send(probe)) << "idle connection " << i << " was closed";
        EXPECT_EQ(idle[i]->read_response().status, 200) << "idle connection " << i;
    }
}

TEST_F(HttpAbuse, SmugglingShapesAre400) {
    const std::vector<std::pair<std::string, std::string>> shapes = {
        {"Content-Length and Transfer-Encoding",
         "POST /v1/features/lookup HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
         "0\r\n\r\n"},
        {"Transfer-Encoding and Content-Length",
         "POST /v1/features/lookup HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
         "0\r\n\r\n"},
        {"two Content-Lengths",
         "POST /v1/features/lookup HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd"},
        {"a Content-Length list", "POST /v1/features/lookup HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 4\r\n\r\nabcd"},
        {"unknown transfer coding",
         "POST /v1/features/lookup HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n"},
        {"chunked not last", "POST /v1/features/lookup HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"},
        {"chunked twice",
         "POST /v1/features/lookup HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
         "\r\n0\r\n\r\n"},
        {"space before the colon",
         "POST /v1/features/lookup HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\nabcd"},
        {"a bare LF in the header", "GET /healthz HTTP/1.1\nHost: x\n\n"},
        {"a bad chunk size",
         "POST /v1/features/lookup HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"},
    };
    for (const auto& [what, bytes] : shapes) {
        raw_conn c(port());
        c.send(bytes);
        expect_answer_then_close(c, 400, what);
    }
    d().expect_alive("smuggling shapes");
}

TEST_F(HttpAbuse, ChunkExtensionAndTrailerBombsAreRefused) {
    const std::string head = "POST /v1/features/lookup HTTP/1.1\r\nHost: x\r\n" + read_auth +
                             "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    {
        raw_conn c(port());
        c.send(head + "5;ext=" + std::string(300000, 'x'));
        const auto r = c.read_response();
        EXPECT_GE(r.status, 400) << "one endless chunk extension";
        EXPECT_LT(r.status, 500);
        EXPECT_TRUE(c.wait_closed(5000ms).closed);
    }
    {
        raw_conn c(port());
        std::string many = head;
        for (int i = 0; i < 300; ++i) many += "1;e=" + std::string(1000, 'e') + "\r\nx\r\n";
        c.send(many);
        EXPECT_EQ(c.read_response().status, 413) << "many chunks with long extensions";
        EXPECT_TRUE(c.wait_closed(5000ms).closed);
    }
    {
        raw_conn c(port());
        std::string trailers = head + "2\r\n{}\r\n0\r\n";
        for (int i = 0; i < 20000; ++i) trailers += "X-T" + std::to_string(i) + ": tttttttt\r\n";
        c.send(trailers);
        const auto r = c.read_response();
        EXPECT_GE(r.status, 400) << "20000 trailer fields";
        EXPECT_LT(r.status, 500);
        EXPECT_TRUE(c.wait_closed(5000ms).closed);
    }
    {
        raw_conn c(port());
        c.send(head + "0\r\nX-Long: " + std::string(300000, 't'));
        const auto r = c.read_response();
        EXPECT_GE(r.status, 400) << "one endless trailer field";
        EXPECT_LT(r.status, 500);
        EXPECT_TRUE(c.wait_closed(5000ms).closed);
    }
    d().expect_alive("chunk extension and trailer bombs");
}

TEST_F(HttpAbuse, AuthBypassAttemptsAre401) {
    const std::vector<std::pair<std::string, std::string>> attempts = {
        {"no key", ""},
        {"an empty Authorization", "Authorization: \r\n"},
        {"Bearer without a key", "Authorization: Bearer\r\n"},
        {"Bearer and spaces", "Authorization: Bearer    \r\n"},
        {"the key without a scheme", "Authorization: read-key\r\n"},
        {"the Basic scheme", "Authorization: Basic cmVhZC1rZXk6\r\n"},
        {"the Token scheme", "Authorization: Token read-key\r\n"},
        {"a wrong key", "Authorization: Bearer read-kez\r\n"},
        {"the key's SHA-256 as the key", std::string("Authorization: Bearer ") + read_key_sha256 + "\r\n"},
        {"an empty X-API-Key", "X-API-Key: \r\n"},
        {"a wrong key, then the right one", "Authorization: Bearer nope\r\nAuthorization: Bearer read-key\r\n"},
        {"the right key, then a wrong one", "Authorization: Bearer read-key\r\nAuthorization: Bearer nope\r\n"},
        {"the right key twice", "Authorization: Bearer read-key\r\nAuthorization: Bearer read-key\r\n"},
        {"two X-API-Keys", "X-API-Key: nope\r\nX-API-Key: read-key\r\n"},
    };
    for (const auto& [what, headers] : attempts) {
        const auto r = d().get(feature_target, headers);
        EXPECT_EQ(r.status, 401) << what << "\n" << r.body;
        EXPECT_NE(r.body.find("\"unauthorized\""), std::string::npos) << what << "\n" << r.body;
    }
    for (const std::string query : {"?api_key=read-key", "?access_token=read-key", "?key=read-key",
                                    "?authorization=Bearer%20read-key"}) {
        const auto r = d().get(std::string(feature_target) + query);
        EXPECT_EQ(r.status, 401) << "key in the query string: " << query;
    }
    // Paths that are not the public ones, however written, stay behind the key.
    for (const std::string path : {"/healthz/../v1/features/user_activity/user-0", "//v1/features/user_activity/user-0",
                                   "/v1/features/user_activity/user-0/", "/V1/features/user_activity/user-0",
                                   "/v1/feature-sets", "/metrics"}) {
        const auto r = d().get(path);
        EXPECT_EQ(r.status, 401) << path << "\n" << r.body;
    }
    // The right key in the right place works: the refusals above are about the attempts.
    EXPECT_EQ(d().get(feature_target, "authorization: bearer read-key\r\n").status, 200);
    EXPECT_EQ(d().get(feature_target, "X-API-Key: read-key\r\n").status, 200);
    d().expect_alive("auth bypass attempts");
}

TEST_F(HttpAbuse, WrongScopeIs403) {
    const auto r = d().get(feature_target, "Authorization: Bearer write-key\r\n");
    EXPECT_EQ(r.status, 403) << r.body;
    EXPECT_NE(r.body.find("\"forbidden\""), std::string::npos) << r.body;
    d().expect_alive("a wrong scope");
}

TEST_F(HttpAbuse, UnknownRoutesAre404AndWrongMethodsAre405WithAllow) {
    EXPECT_EQ(d().get("/v1/nothing", read_auth).status, 404);
    raw_conn c(port());
    c.send(request("DELETE", feature_target, read_auth));
    const auto r = c.read_response();
    EXPECT_EQ(r.status, 405);
    EXPECT_NE(r.header("allow").find("GET"), std::string::npos) << r.head;
    d().expect_alive("404 and 405");
}

// Daemons of their own: a tight rate limit, a small connection cap, TLS.

TEST(HttpAbuseLimits, OverTheRateLimitIs429WithRetryAfter) {
    raise_open_file_limit();
    running_daemon d;
    // Each API key is a client of its own: "reader" for start-up and the liveness checks, "other"
    // for the test. Burst 3, then one request a second.
    json keys = auth_keys;
    keys["api_keys"].push_back({{"name", "other"}, {"sha256", other_key_sha256}, {"scopes", {"read"}}});
    ASSERT_TRUE(d.start({{"auth", keys}, {"rate_limit", {{"requests_per_sec", 1}, {"burst", 3}}}}, read_auth))
        << d.proc->log_tail();
    const std::string other = "Authorization: Bearer other-key\r\n";
    for (int i = 0; i < 3; ++i) EXPECT_EQ(d.get(feature_target, other).status, 200) << "request " << i;
    const auto last = d.get(feature_target, other);
    EXPECT_EQ(last.status, 429) << last.body;
    EXPECT_NE(last.body.find("\"rate_limited\""), std::string::npos) << last.body;
    const std::string retry_after = last.header("retry-after");
    ASSERT_FALSE(retry_after.empty()) << last.head;
    EXPECT_EQ(retry_after.find_first_not_of("0123456789"), std::string::npos) << retry_after;
    EXPECT_GE(std::stoi(retry_after), 1);
    EXPECT_LE(std::stoi(retry_after), 1);
    // Health probes are never limited.
    for (int i = 0; i < 10; ++i) EXPECT_NE(d.get(i % 2 ? "/healthz" : "/readyz").status, 429);
    // After Retry-After the client is served again.
    std::this_thread::sleep_for(std::chrono::seconds(std::stoi(retry_after)));
    EXPECT_EQ(d.get(feature_target, other).status, 200);
    d.expect_alive("rate limiting");
}

TEST(HttpAbuseLimits, ConnectionsBeyondTheCapAreClosedAndServiceContinues) {
    raise_open_file_limit();
    running_daemon d;
    constexpr int cap = 20;
    ASSERT_TRUE(d.start({{"max_connections", cap}})) << d.proc->log_tail();
    // Fill the cap. The start-up checks' connections may take a moment to be closed on the
    // daemon's side, so a refused one is retried for a little while.
    std::vector<std::unique_ptr<raw_conn>> held;
    const auto fill_deadline = steady::now() + 5s;
    while (held.size() < static_cast<std::size_t>(cap) && steady::now() < fill_deadline) {
        auto c = std::make_unique<raw_conn>(d.port);
        if (c->send(request("GET", "/healthz")) && c->read_response().status == 200)
            held.push_back(std::move(c));
        else
            std::this_thread::sleep_for(50ms);
    }
    ASSERT_EQ(held.size(), static_cast<std::size_t>(cap)) << "could not open as many connections as the cap";
    for (int i = 0; i < 3; ++i) {
        raw_conn over(d.port);
        over.send(request("GET", "/healthz"));
        const auto closed = over.wait_closed(3000ms);
        EXPECT_TRUE(closed.closed) << "connection over the cap was kept open";
        EXPECT_EQ(closed.bytes, 0u);
    }
    // The held connections still work.
    ASSERT_TRUE(held.front()->send(request("GET", "/healthz")));
    EXPECT_EQ(held.front()->read_response().status, 200);
    // Let some go: new connections are served again, the listener kept accepting.
    held.resize(cap - 5);
    EXPECT_TRUE(it::wait_until(5s, [&] { return d.feature_read().status == 200; }, 50ms));
    EXPECT_EQ(d.get("/healthz").status, 200);
    const std::string log = it::read_file(d.proc->log_path());
    EXPECT_NE(log.find("http.max_connections"), std::string::npos) << "the refusals were not logged";
}

class HttpAbuseTls : public ::testing::Test {
protected:
    void SetUp() override {
        raise_open_file_limit();
        const auto r = it::run_command({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout",
                                        (dir_ / "key.pem").string(), "-out", (dir_ / "cert.pem").string()},
                                       30s);
        ASSERT_TRUE(r.status.ok()) << r.output;
    }
    json tls() const {
        return {{"tls", {{"cert_file", (dir_ / "cert.pem").string()}, {"key_file", (dir_ / "key.pem").string()}}}};
    }
    it::command_result curl(const std::vector<std::string>& args) {
        std::vector<std::string> argv = {"curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}"};
        argv.insert(argv.end(), args.begin(), args.end());
        return it::run_command(argv, 20s);
    }
    it::temp_dir dir_{"sluice-tls-"};
};

TEST_F(HttpAbuseTls, ServesOverTlsToCurlTrustingTheCertificate) {
    const int port = it::free_port();
    it::daemon_process proc(daemon_config(port, tls()));
    proc.start();
    const std::string base = "https://127.0.0.1:" + std::to_string(port);
    const std::string ca = (dir_ / "cert.pem").string();
    ASSERT_TRUE(it::wait_until(30s, [&] { return curl({"--cacert", ca, base + "/healthz"}).output.ends_with("200"); },
                               200ms))
        << proc.log_tail();
    bool read = it::wait_until(20s, [&] {
        return curl({"--cacert", ca, base + feature_target}).output.ends_with("200");
    });
    EXPECT_TRUE(read);
    const auto r = curl({"--cacert", ca, base + feature_target});
    EXPECT_NE(r.output.find("\"user-0\""), std::string::npos) << r.output;

    // Without trusting the certificate, curl refuses the server; plain HTTP gets no answer.
    EXPECT_FALSE(curl({base + "/healthz"}).status.ok());
    EXPECT_FALSE(curl({"http://127.0.0.1:" + std::to_string(port) + "/healthz"}).output.ends_with("200"));
    // A client that connects and never handshakes is dropped at the read timeout.
    raw_conn silent(port);
    const auto closed = silent.wait_closed(std::chrono::milliseconds(read_timeout_ms) * 3);
    EXPECT_TRUE(closed.closed) << "a silent TLS client was kept open";
    // And the daemon is still fine.
    EXPECT_TRUE(curl({"--cacert", ca, base + "/healthz"}).output.ends_with("200"));
    EXPECT_TRUE(proc.running());
}

TEST_F(HttpAbuseTls, AnUnusableKeyStopsTheStartWithAClearMessage) {
    const int port = it::free_port();
    json cfg = daemon_config(port, tls());
    cfg["http"]["tls"]["key_file"] = (dir_ / "cert.pem").string();  // a certificate is not a key
    it::daemon_process proc(cfg);
    proc.start();
    ASSERT_TRUE(it::wait_until(30s, [&] { return !proc.running(); })) << "the daemon started anyway";
    const auto status = proc.terminate(5s);
    ASSERT_TRUE(status);
    EXPECT_FALSE(status->ok()) << status->describe();
    const std::string log = it::read_file(proc.log_path());
    EXPECT_NE(log.find("http.tls.key_file"), std::string::npos) << log;
}

}  // namespace
