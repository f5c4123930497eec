// Self-tests of the integration fixtures (tests/integration/support): each real server starts
// on a free loopback port, answers, stops and comes back, so that a failure of the pipeline
// tests points at the daemon and not at the harness.

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include <libpq-fe.h>

#include "integration/support/faults.hpp"
#include "integration/support/stack.hpp"

namespace it = sluice::it;
using namespace std::chrono_literals;

TEST(Support, temp_dir_is_removed_with_its_contents) {
    std::filesystem::path where;
    {
        it::temp_dir dir("sluice-selftest-");
        where = dir.path();
        std::filesystem::create_directories(dir / "a/b");
        it::write_file(dir / "a/b/c.txt", "hello\n");
        EXPECT_EQ(it::read_file(dir / "a/b/c.txt"), "hello\n");
        EXPECT_TRUE(std::filesystem::is_directory(where));
    }
    EXPECT_FALSE(std::filesystem::exists(where));
}

TEST(Support, free_port_can_be_bound_again) {
    int port = it::free_port();
    ASSERT_GT(port, 0);
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);
}

TEST(Support, run_command_reports_exit_code_and_output) {
    auto r = it::run_command({"/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"}, 10s);
    EXPECT_FALSE(r.timed_out);
    EXPECT_TRUE(r.status.exited);
    EXPECT_EQ(r.status.code, 3);
    EXPECT_NE(r.output.find("to-stdout"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("to-stderr"), std::string::npos) << r.output;

    auto missing = it::run_command({"/nonexistent/binary"}, 10s);
    EXPECT_EQ(missing.status.code, 127) << missing.output;

    auto slow = it::run_command({"sleep", "30"}, 300ms);
    EXPECT_TRUE(slow.timed_out);
    EXPECT_EQ(slow.status.signal, SIGKILL);
}

TEST(Support, child_process_stops_gracefully_or_by_force) {
    it::temp_dir dir("sluice-selftest-");
    {
        it::child_process graceful(it::spawn_options{
            {"/bin/sh", "-c", "trap 'echo bye; exit 0' TERM; echo up; while :; do sleep 0.05; done"},
            dir / "graceful.log", {}, {}, SIGKILL, {}});
        ASSERT_TRUE(it::wait_until(5s, [&] { return it::read_file(dir / "graceful.log").find("up") != std::string::npos; }));
        bool timed_out = true;
        auto st = graceful.stop(SIGTERM, 5s, &timed_out);
        EXPECT_FALSE(timed_out);
        EXPECT_TRUE(st.ok()) << st.describe();
        EXPECT_NE(it::read_file(dir / "graceful.log").find("bye"), std::string::npos);
        EXPECT_FALSE(graceful.running());
    }
    {
        it::child_process stubborn(it::spawn_options{
            {"/bin/sh", "-c", "trap '' TERM; echo up; while :; do sleep 0.05; done"}, dir / "stubborn.log", {}, {},
            SIGKILL, {}});
        ASSERT_TRUE(it::wait_until(5s, [&] { return it::read_file(dir / "stubborn.log").find("up") != std::string::npos; }));
        bool timed_out = false;
        auto st = stubborn.stop(SIGTERM, 300ms, &timed_out);
        EXPECT_TRUE(timed_out);
        EXPECT_EQ(st.signal, SIGKILL) << st.describe();
    }
}

namespace {

// A one-connection-at-a-time server that answers each accepted connection with the next
// canned response, for testing the HTTP client's parsing.
class canned_server {
public:
    explicit canned_server(std::vector<std::string> responses) : responses_(std::move(responses)) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 8) != 0) {
            throw std::runtime_error("canned_server: bind/listen failed");
        }
        socklen_t len = sizeof addr;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
        port_ = ntohs(addr.sin_port);
        thread_ = std::thread([this] { run(); });
    }
    ~canned_server() {
        ::shutdown(fd_, SHUT_RDWR);
        ::close(fd_);
        thread_.join();
    }
    int port() const { return port_; }
    std::vector<std::string> requests() {
        std::lock_guard lock(mu_);
        return requests_;
    }

private:
    void run() {
        for (const auto& response : responses_) {
            int c = ::accept(fd_, nullptr, nullptr);
            if (c < 0) return;
            std::string req;
            char buf[4096];
            while (req.find("\r\n\r\n") == std::string::npos) {
                ssize_t n = ::recv(c, buf, sizeof buf, 0);
                if (n <= 0) break;
                req.append(buf, static_cast<std::size_t>(n));
            }
            {
                std::lock_guard lock(mu_);
                requests_.push_back(req);
            }
            (void)!::send(c, response.data(), response.size(), MSG_NOSIGNAL);
            ::close(c);
        }
    }
    std::vector<std::string> responses_;
    int fd_ = -1;
    int port_ = 0;
    std::thread thread_;
    std::mutex mu_;
    std::vector<std::string> requests_;
};

}  // namespace

TEST(Support, http_client_reads_sized_chunked_and_close_delimited_bodies) {
    canned_server server({
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":true}\nEXTRA",
        "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"e\"\r\n5;ext=1\r\n:404}\r\n0\r\n\r\n",
        "HTTP/1.0 503 Service Unavailable\r\nX-Why: db\r\n\r\nnot ready",
    });
    auto a = it::http_get(server.port(), "/v1/features/s/" + it::url_encode("a/b c"));
    EXPECT_EQ(a.status, 200) << a.error;
    EXPECT_EQ(a.headers["content-type"], "application/json");
    EXPECT_EQ(a.body, "{\"a\":true}\n");

    auto b = it::http_get(server.port(), "/x");
    EXPECT_EQ(b.status, 404) << b.error;
    EXPECT_EQ(b.reason, "Not Found");
    EXPECT_EQ(b.body, "{\"e\":404}");

    auto c = it::http_get(server.port(), "/readyz");
    EXPECT_EQ(c.status, 503) << c.error;
    EXPECT_EQ(c.headers["x-why"], "db");
    EXPECT_EQ(c.body, "not ready");

    auto reqs = server.requests();
    ASSERT_EQ(reqs.size(), 3u);
    EXPECT_EQ(reqs[0].rfind("GET /v1/features/s/a%2Fb%20c HTTP/1.1\r\n", 0), 0u) << reqs[0];
    EXPECT_NE(reqs[0].find("Connection: close\r\n"), std::string::npos);

    // Nobody listens on a fresh free port: no response, an error, no exception.
    auto refused = it::http_get(it::free_port(), "/healthz", 1s);
    EXPECT_EQ(refused.status, 0);
    EXPECT_FALSE(refused.error.empty());
}

TEST(Support, postgres_starts_answers_and_survives_restart) {
    it::postgres_server pg;
    EXPECT_EQ(it::pg_query(pg.dsn(), "SELECT current_database(), 1 + 1"),
              (it::pg_rows{{"sluice", "2"}}));
    it::pg_query(pg.dsn(), "CREATE TABLE t (k text PRIMARY KEY, v bigint, n text)");
    it::pg_query(pg.dsn(), "INSERT INTO t VALUES ($1, $2, NULL)", {"a'b", "42"});
    EXPECT_EQ(it::pg_query(pg.dsn(), "SELECT k, v, n FROM t"), (it::pg_rows{{"a'b", "42", it::pg_null}}));
    EXPECT_EQ(it::pg_count(pg.dsn(), "SELECT count(*) FROM no_such_table"), -1);

    pg.stop();
    EXPECT_FALSE(pg.running());
    const std::string conninfo = pg.dsn() + " connect_timeout=2";
    EXPECT_EQ(PQping(conninfo.c_str()), PQPING_NO_RESPONSE);
    EXPECT_THROW(it::pg_query(pg.dsn(), "SELECT 1"), std::runtime_error);

    pg.start();
    EXPECT_TRUE(pg.running());
    EXPECT_EQ(it::pg_count(pg.dsn(), "SELECT count(*) FROM t WHERE v = $1", {"42"}), 1);

    pg.kill9();
    pg.start();
    EXPECT_EQ(it::pg_count(pg.dsn(), "SELECT count(*) FROM t"), 1);
}

TEST(Support, redis_answers_and_restarts) {
    it::redis_server redis;
    {
        it::redis_client c(redis.port());
        EXPECT_TRUE(c.ping());
        c.command({"HSET", "sluice:s:k", "clicks", "17", "country", "\"DE\"", "_event_time", "1700000000000"});
        c.command({"EXPIRE", "sluice:s:k", "86400"});
        auto h = c.hgetall("sluice:s:k");
        EXPECT_EQ(h, (std::map<std::string, std::string>{
                         {"clicks", "17"}, {"country", "\"DE\""}, {"_event_time", "1700000000000"}}));
        long long ttl = c.ttl("sluice:s:k");
        EXPECT_GT(ttl, 86000);
        EXPECT_LE(ttl, 86400);
        EXPECT_EQ(c.ttl("sluice:s:missing"), -2);
        EXPECT_TRUE(c.hgetall("sluice:s:missing").empty());
    }
    redis.stop();
    EXPECT_THROW(it::redis_client(redis.port()), std::runtime_error);
    redis.start();
    it::redis_client c(redis.port());
    EXPECT_TRUE(c.ping());
    EXPECT_TRUE(c.hgetall("sluice:s:k").empty());  // persistence is off
}

TEST(Support, kafka_mock_produces_and_reports_offsets) {
    it::kafka_cluster kafka;
    EXPECT_NE(kafka.bootstraps().find("127.0.0.1:"), std::string::npos) << kafka.bootstraps();
    kafka.create_topic("selftest", 3);

    std::vector<std::size_t> ids;
    for (int i = 0; i < 300; ++i) {
        ids.push_back(kafka.produce("selftest", "key-" + std::to_string(i % 10), "{\"i\":" + std::to_string(i) + "}"));
    }
    ids.push_back(kafka.produce("selftest", std::string("key-0"), std::nullopt));
    kafka.flush(30s);
    ASSERT_EQ(kafka.produced(), 301u);

    std::map<int, std::set<std::int64_t>> seen;
    std::map<std::string, int> partition_of_key;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        auto d = kafka.delivery_of(ids[i]);
        ASSERT_TRUE(d.done);
        ASSERT_TRUE(d.error.empty()) << d.error;
        EXPECT_TRUE(seen[d.partition].insert(d.offset).second) << "offset delivered twice";
        std::string key = "key-" + std::to_string(i % 10);
        if (i < 300) {
            auto [it, fresh] = partition_of_key.emplace(key, d.partition);
            EXPECT_EQ(it->second, d.partition) << "one key, one partition";
        }
    }
    auto ends = kafka.end_offsets("selftest", 3);
    std::int64_t total = 0;
    for (auto [p, end] : ends) {
        total += end;
        EXPECT_EQ(static_cast<std::int64_t>(seen[p].size()), end) << "partition " << p;
    }
    EXPECT_EQ(total, 301);

    const std::string group = "selftest-" + it::random_suffix();
    for (auto [p, off] : kafka.committed_offsets(group, "selftest", 3)) {
        EXPECT_EQ(off, RD_KAFKA_OFFSET_INVALID) << "partition " << p;
    }
    kafka.commit_offsets(group, "selftest", ends);
    EXPECT_EQ(kafka.committed_offsets(group, "selftest", 3), ends);
}

TEST(Support, kafka_topic_reads_back_with_copies_told_apart_from_strangers) {
    it::kafka_cluster kafka;
    kafka.create_topic("readback", 2);
    std::vector<it::stream_event> produced;
    for (int i = 0; i < 40; ++i) {
        it::stream_event e;
        e.key = "k" + std::to_string(i % 7);
        e.ts = 1000 + i;
        e.clicks = i + 1;
        e.id = kafka.produce("readback", e.key, it::event_message(e).dump());
        produced.push_back(e);
    }
    kafka.flush(30s);
    it::record_deliveries(kafka, produced);

    // Without copies the held events are the produced ones, each where its delivery report put it.
    EXPECT_EQ(kafka.partitions_of("readback"), 2);
    std::size_t copies = 99;
    auto held = it::held_events(kafka, "readback", produced, copies);
    EXPECT_EQ(copies, 0u);
    ASSERT_EQ(held.size(), produced.size());
    std::map<it::location, std::int64_t> clicks_at, held_clicks_at;
    for (const auto& e : produced) clicks_at[{e.partition, e.offset}] = e.clicks;
    for (const auto& e : held) held_clicks_at[{e.partition, e.offset}] = e.clicks;
    EXPECT_EQ(held_clicks_at, clicks_at);

    // The same bytes written again without a report of their own, as a broker does with a
    // produce retried across a dropped connection: one more held event, a copy at the new place.
    const std::size_t copy_id = kafka.produce("readback", produced[5].key, it::event_message(produced[5]).dump());
    kafka.flush(30s);
    const auto copy_at = kafka.delivery_of(copy_id);
    held = it::held_events(kafka, "readback", produced, copies);
    EXPECT_EQ(copies, 1u);
    ASSERT_EQ(held.size(), produced.size() + 1);
    const auto copy = std::find_if(held.begin(), held.end(), [&](const it::stream_event& e) {
        return e.partition == copy_at.partition && e.offset == copy_at.offset;
    });
    ASSERT_NE(copy, held.end());
    EXPECT_EQ(copy->clicks, produced[5].clicks);

    // A message nobody produced (as far as `produced` knows) is a failure, not a copy.
    kafka.produce("readback", std::string("k0"), std::string("{\"user_id\":\"k0\",\"clicks\":-1}"));
    kafka.flush(30s);
    EXPECT_NONFATAL_FAILURE(it::held_events(kafka, "readback", produced, copies), "that was never produced");
}

TEST(Support, daemon_process_runs_a_server_and_stops_it) {
    if (it::run_command({"python3", "-c", "pass"}, 10s).status.code != 0) GTEST_SKIP() << "python3 not available";
    it::temp_dir dir("sluice-selftest-");
    // A stand-in daemon: reads http.listen from its --config file, answers /healthz, exits 0
    // on SIGTERM.
    it::write_file(dir / "fake-daemon.py", R"(
import json, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
cfg = json.load(open(sys.argv[2]))
host, port = cfg["http"]["listen"].rsplit(":", 1)
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"ok":true}' if self.path == "/healthz" else b'{"error":{"code":"not_found","message":"no"}}'
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
print("fake daemon listening on", port, flush=True)
HTTPServer((host, int(port)), H).serve_forever()
)");
    it::write_file(dir / "fake-daemon", "#!/bin/sh\nexec python3 " + (dir / "fake-daemon.py").string() + " \"$@\"\n");
    std::filesystem::permissions(dir / "fake-daemon", std::filesystem::perms::owner_all);

    int port = it::free_port();
    it::daemon_process d(nlohmann::json{{"http", {{"listen", "127.0.0.1:" + std::to_string(port)}}}});
    d.use_binary((dir / "fake-daemon").string());
    d.start();
    ASSERT_TRUE(d.wait_http_ready(port, 20s)) << d.log_tail();
    EXPECT_EQ(it::http_get(port, "/nope").status, 404);
    auto st = d.terminate(10s);
    ASSERT_TRUE(st.has_value());
    EXPECT_TRUE(st->ok()) << st->describe();
    EXPECT_NE(d.log_tail().find("fake daemon listening"), std::string::npos) << d.log_tail();

    d.start();  // the same config again, as a restart would
    ASSERT_TRUE(d.wait_http_ready(port, 20s)) << d.log_tail();
    auto killed = d.kill9();
    EXPECT_EQ(killed.signal, SIGKILL);
    EXPECT_NE(d.log_tail().find("daemon restarted"), std::string::npos);
}
