// The io-thread Redis reader against a fake Redis on a loopback port: the bytes it writes on a
// new connection (AUTH, SELECT, then the reads), what it makes of the replies, and what it does
// when Redis accepts the connection and then answers nothing. The reader only works on an HTTP io
// thread, so each test starts the real HTTP server with one io thread, learns that thread's
// io_context from one request, and posts the reads onto it.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/post.hpp>

#include "sluice/store/redis_io_reader.hpp"
#include "mocks/mock_services.hpp"
#include "sluice/core/io_thread.hpp"
#include "sluice/serve/http_server.hpp"
#include "unit/serve/server_fixture.hpp"

namespace sluice {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using latest_result = result<std::optional<latest_entry>>;

constexpr int timeout_ms = 200;  // redis.timeout_ms in these tests

// A command as a client writes it, built here independently of the reader's own encoder.
std::string resp_command(std::initializer_list<std::string_view> args) {
    std::string out = "*" + std::to_string(args.size()) + "\r\n";
    for (const auto a : args) {
        out += "$" + std::to_string(a.size()) + "\r\n";
        out.append(a);
        out += "\r\n";
    }
    return out;
}

// One command (an array of bulk strings) at the start of `in`: the bytes it took, 0 when it is not
// complete yet, -1 when it is not a command.
long parse_command(std::string_view in, std::vector<std::string>& args) {
    args.clear();
    const auto number_line = [&in](std::size_t& pos, char tag, long& n) -> int {  // 1 ok, 0 more, -1 bad
        if (pos >= in.size()) return 0;
        if (in[pos] != tag) return -1;
        const std::size_t end = in.find("\r\n", pos);
        if (end == std::string_view::npos) return 0;
        n = 0;
        for (std::size_t i = pos + 1; i < end; ++i) {
            if (in[i] < '0' || in[i] > '9') return -1;
            n = n * 10 + (in[i] - '0');
        }
        pos = end + 2;
        return 1;
    };
    std::size_t pos = 0;
    long count = 0;
    if (const int r = number_line(pos, '*', count); r != 1) return r;
    for (long i = 0; i < count; ++i) {
        long len = 0;
        if (const int r = number_line(pos, '$', len); r != 1) return r;
        const std::size_t size = static_cast<std::size_t>(len);
        if (in.size() < pos + size + 2) return 0;
        if (in.substr(pos + size, 2) != "\r\n") return -1;
        args.emplace_back(in.substr(pos, size));
        pos += size + 2;
    }
    return static_cast<long>(pos);
}

/// A Redis on 127.0.0.1:<free port> that records what each connection sends and answers each
/// command from a script (nullopt: no answer, ever). Owned by the test; one thread of its own that
/// polls with a short timeout and stops in the destructor. The script runs on that thread, under
/// the lock: it must not call back into the fake.
class fake_redis {
public:
    using script = std::function<std::optional<std::string>(std::size_t connection, const std::vector<std::string>& command)>;

    explicit fake_redis(script s) : script_(std::move(s)) {
        listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (listen_fd_ < 0) return;
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = 0;
        socklen_t len = sizeof addr;
        if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 16) != 0 ||
            ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
            return;
        port_ = ntohs(addr.sin_port);
        thread_ = std::thread([this] { run(); });
    }

    ~fake_redis() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
        for (auto& c : connections_)
            if (c.fd >= 0) ::close(c.fd);
        if (listen_fd_ >= 0) ::close(listen_fd_);
    }
    fake_redis(const fake_redis&) = delete;
    fake_redis& operator=(const fake_redis&) = delete;

    std::uint16_t port() const { return port_; }

    std::size_t connections() const {
        std::lock_guard lock(mutex_);
        return connections_.size();
    }
    /// Every byte connection `i` (in the order they were accepted) has sent.
    std::string received(std::size_t i) const {
        std::lock_guard lock(mutex_);
        return i < connections_.size() ? connections_[i].received : std::string();
    }
    /// The commands connection `i` has sent, each as its arguments.
    std::vector<std::vector<std::string>> commands(std::size_t i) const {
        std::lock_guard lock(mutex_);
        return i < connections_.size() ? connections_[i].commands : std::vector<std::vector<std::string>>{};
    }
    /// True once connection `i` has been closed by the client, within limit.
    bool wait_closed(std::size_t i, std::chrono::milliseconds limit) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, limit, [&] { return i < connections_.size() && connections_[i].closed; });
    }
    /// True once connection `i` has sent at least n commands, within limit.
    bool wait_commands(std::size_t i, std::size_t n, std::chrono::milliseconds limit) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, limit, [&] { return i < connections_.size() && connections_[i].commands.size() >= n; });
    }

private:
    struct connection {
        int fd = -1;
        bool closed = false;
        std::string received;
        std::string pending;  // received, not yet a whole command
        std::vector<std::vector<std::string>> commands;
    };

    void run() {
        while (!stop_) {
            std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
            std::vector<std::size_t> which;
            {
                std::lock_guard lock(mutex_);
                for (std::size_t i = 0; i < connections_.size(); ++i) {
                    if (connections_[i].fd < 0) continue;
                    fds.push_back({connections_[i].fd, POLLIN, 0});
                    which.push_back(i);
                }
            }
            if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
            if (fds[0].revents & POLLIN) {
                const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
                if (fd >= 0) {
                    std::lock_guard lock(mutex_);
                    connections_.push_back({});
                    connections_.back().fd = fd;
                    cv_.notify_all();
                }
            }
            for (std::size_t k = 1; k < fds.size(); ++k) {
                if (fds[k].revents == 0) continue;
                on_readable(which[k - 1], fds[k].fd);
            }
        }
    }

    void on_readable(std::size_t i, int fd) {
        char chunk[4096];
        const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        std::string replies;
        {
            std::lock_guard lock(mutex_);
            connection& c = connections_[i];
            if (n <= 0) {
                ::close(fd);
                c.fd = -1;
                c.closed = true;
                cv_.notify_all();
                return;
            }
            c.received.append(chunk, static_cast<std::size_t>(n));
            c.pending.append(chunk, static_cast<std::size_t>(n));
            std::vector<std::string> args;
            for (;;) {
                const long used = parse_command(c.pending, args);
                if (used == 0) break;
                if (used < 0) {  // not a command: recorded as such, and nothing more is parsed
                    c.commands.push_back({"<not a command>"});
                    c.pending.clear();
                    break;
                }
                c.pending.erase(0, static_cast<std::size_t>(used));
                c.commands.push_back(args);
                if (auto reply = script_(i, args)) replies += *reply;
            }
            cv_.notify_all();
        }
        for (std::size_t sent = 0; sent < replies.size();) {
            const ssize_t w = ::send(fd, replies.data() + sent, replies.size() - sent, MSG_NOSIGNAL);
            if (w <= 0) break;
            sent += static_cast<std::size_t>(w);
        }
    }

    script script_;
    int listen_fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<connection> connections_;
    std::thread thread_;
};

/// A feature_reader whose only use is to learn which io_context the HTTP io thread runs.
class io_context_probe final : public feature_reader {
public:
    void get_latest(std::uint32_t, std::string, latest_callback done) override {
        {
            std::lock_guard lock(mutex_);
            if (ioc_ == nullptr) ioc_ = current_io_context();
        }
        cv_.notify_all();
        done(std::optional<latest_entry>{});
    }
    boost::asio::io_context* wait(std::chrono::milliseconds limit) {
        std::unique_lock lock(mutex_);
        cv_.wait_for(lock, limit, [this] { return ioc_ != nullptr; });
        return ioc_;
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    boost::asio::io_context* ioc_ = nullptr;
};

/// What one read's callback got, when, and whether it ran on the io thread.
struct read_answer {
    latest_result r;
    clock_type::time_point at;
    bool on_io_thread;
};

/// One read handed to the reader: whether it took it, and its answer to come.
struct read_call {
    bool accepted = false;
    std::shared_ptr<std::atomic<int>> calls;  // how many times the callback ran
    std::shared_future<read_answer> answer;

    /// The answer within limit, or nullopt.
    std::optional<read_answer> wait(std::chrono::milliseconds limit) const {
        if (answer.wait_for(limit) != std::future_status::ready) return std::nullopt;
        return answer.get();
    }
};

class RedisIoReaderTest : public ::testing::Test {
protected:
    /// Starts the fake Redis with `script`, then the reader with the config `adjust` leaves, then
    /// the HTTP server whose io thread the reads run on.
    void start(fake_redis::script script, const std::function<void(redis_config&)>& adjust = {}) {
        redis_ = std::make_unique<fake_redis>(std::move(script));
        ASSERT_NE(redis_->port(), 0) << "the fake Redis could not listen";

        feature_set_config s;
        s.name = "user_activity";
        s.topic = "user-events";
        s.key_field = "user_id";
        s.event_time_field = "ts";
        s.fields = {testing::make_field("clicks", field_type::int64), testing::make_field("spend", field_type::float64),
                    testing::make_field("country", field_type::string)};
        cfg_.feature_sets.push_back(s);
        cfg_.http.listen = "127.0.0.1:0";
        cfg_.http.threads = 1;
        redis_config rc;
        rc.host = "127.0.0.1";
        rc.port = redis_->port();
        rc.key_prefix = "fs";
        rc.timeout_ms = timeout_ms;
        if (adjust) adjust(rc);
        cfg_.redis = rc;
        reader_ = std::make_unique<redis_io_reader>(cfg_);

        ctx_.cfg = &cfg_;
        ctx_.reader = &probe_;
        ctx_.health = &health_;
        server_ = make_http_server(ctx_);
        const status st = server_->start();
        ASSERT_TRUE(st.ok()) << st.message();
        testing::wire_client client(server_->port());
        const auto res = client.request(testing::http::verb::get, "/v1/features/user_activity/probe");
        ASSERT_TRUE(res.has_value()) << "no answer from the HTTP server";
        ioc_ = probe_.wait(2s);
        ASSERT_NE(ioc_, nullptr) << "the probe was not called on an io thread";
    }

    void TearDown() override {
        if (server_) server_->stop();  // joins the io thread: nothing runs the reader after this
        server_.reset();
        reader_.reset();
        redis_.reset();
    }

    /// Hands the keys to the reader on the io thread, all in the same turn of its loop.
    std::vector<read_call> read(const std::vector<std::string>& keys) {
        std::vector<read_call> calls(keys.size());
        std::vector<std::shared_ptr<std::atomic<int>>> counters;
        std::vector<std::shared_ptr<std::promise<read_answer>>> promises;
        for (auto& c : calls) {
            c.calls = std::make_shared<std::atomic<int>>(0);
            counters.push_back(c.calls);
            promises.push_back(std::make_shared<std::promise<read_answer>>());
            c.answer = promises.back()->get_future().share();
        }
        auto accepted = std::make_shared<std::promise<std::vector<bool>>>();
        auto accepted_future = accepted->get_future();
        boost::asio::post(*ioc_, [reader = reader_.get(), keys, counters, promises, accepted, ioc = ioc_] {
            std::vector<bool> took;
            for (std::size_t i = 0; i < keys.size(); ++i) {
                took.push_back(reader->read(0, keys[i], [counter = counters[i], p = promises[i], ioc](latest_result r) {
                    if (counter->fetch_add(1) == 0)
                        p->set_value(read_answer{std::move(r), clock_type::now(), current_io_context() == ioc});
                }));
            }
            accepted->set_value(std::move(took));
        });
        if (accepted_future.wait_for(2s) != std::future_status::ready) {
            ADD_FAILURE() << "the io thread did not run the reads within 2 s";
            return calls;
        }
        const auto took = accepted_future.get();
        for (std::size_t i = 0; i < calls.size(); ++i) calls[i].accepted = took[i];
        return calls;
    }

    read_call read_one(const std::string& key) { return read({key}).front(); }

    /// Reads key k1 (the fake Redis answers OK and an empty hash) and checks the read succeeded
    /// with no entry; `sent` gets the bytes of the connection as the fake Redis received them.
    void read_k1_expecting_no_entry(std::string& sent) {
        const read_call call = read_one("k1");
        ASSERT_TRUE(call.accepted);
        const auto answer = call.wait(2s);
        ASSERT_TRUE(answer.has_value());
        ASSERT_TRUE(answer->r.ok()) << answer->r.message();
        EXPECT_FALSE(answer->r.value().has_value());  // *0: no such key
        sent = redis_->received(0);
    }

    config cfg_;
    std::unique_ptr<fake_redis> redis_;
    std::unique_ptr<redis_io_reader> reader_;
    io_context_probe probe_;
    testing::fake_health_source health_;
    serve_context ctx_;
    http_server_ptr server_;
    boost::asio::io_context* ioc_ = nullptr;
};

std::optional<std::string> answer_ok_and_empty(std::size_t, const std::vector<std::string>& cmd) {
    if (cmd.at(0) == "HGETALL") return std::string("*0\r\n");
    return std::string("+OK\r\n");
}

std::vector<std::string> command_names(const std::vector<std::vector<std::string>>& commands) {
    std::vector<std::string> names;
    for (const auto& c : commands) names.push_back(c.empty() ? "<empty>" : c.front());
    return names;
}

// 1. Redis accepts the connection and never answers.

TEST_F(RedisIoReaderTest, ARedisThatNeverAnswersFailsTheReadAfterTheTimeoutThenIsAvoidedForASecond) {
    // The first connection stays silent; later ones answer as Redis would.
    start([](std::size_t connection, const std::vector<std::string>& cmd) -> std::optional<std::string> {
        if (connection == 0) return std::nullopt;
        if (cmd.at(0) == "HGETALL") return std::string("*4\r\n$11\r\n_event_time\r\n$4\r\n1000\r\n$6\r\nclicks\r\n$1\r\n7\r\n");
        return std::nullopt;
    });

    const auto asked = clock_type::now();
    const read_call first = read_one("k1");
    ASSERT_TRUE(first.accepted);
    const auto answer = first.wait(std::chrono::milliseconds(10 * timeout_ms));
    ASSERT_TRUE(answer.has_value()) << "no answer within 10x redis.timeout_ms: the read hangs";
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(answer->at - asked);
    ASSERT_FALSE(answer->r.ok()) << "a Redis that never answered gave an answer";
    EXPECT_NE(answer->r.message().find("redis.timeout_ms"), std::string::npos) << answer->r.message();
    EXPECT_GT(took.count(), timeout_ms / 2) << "failed before redis.timeout_ms";
    EXPECT_LT(took.count(), 10 * timeout_ms);
    EXPECT_TRUE(answer->on_io_thread);
    EXPECT_EQ(redis_->commands(0), (std::vector<std::vector<std::string>>{{"HGETALL", "fs:user_activity:k1"}}));
    EXPECT_TRUE(redis_->wait_closed(0, 2s)) << "the silent connection was not closed";

    // Right after the failure, reads go another way: refused, and their callback never runs.
    std::vector<read_call> declined;
    read_call again;
    for (;;) {
        again = read_one("k2");
        if (again.accepted || clock_type::now() - answer->at > 5s) break;
        declined.push_back(again);
        if (declined.size() == 1) {
            EXPECT_EQ(redis_->connections(), 1u) << "reconnected while still avoiding Redis";
        }
        std::this_thread::sleep_for(20ms);
    }
    ASSERT_TRUE(again.accepted) << "still refusing reads 5 s after the failure";
    const auto avoided = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - answer->at);
    ASSERT_FALSE(declined.empty()) << "a read was taken right after the failure";
    EXPECT_GE(avoided.count(), 950) << "Redis tried again before a second had passed";
    EXPECT_LT(avoided.count(), 2500);

    // ... then a new connection, which answers.
    const auto retried = again.wait(2s);
    ASSERT_TRUE(retried.has_value()) << "the retried read got no answer";
    ASSERT_TRUE(retried->r.ok()) << retried->r.message();
    ASSERT_TRUE(retried->r.value().has_value());
    EXPECT_EQ(retried->r.value()->key, "k2");
    EXPECT_EQ(retried->r.value()->event_time_ms, 1000);
    EXPECT_EQ(redis_->connections(), 2u);
    EXPECT_EQ(redis_->commands(1), (std::vector<std::vector<std::string>>{{"HGETALL", "fs:user_activity:k2"}}));
    for (const auto& d : declined) EXPECT_EQ(d.calls->load(), 0) << "a refused read's callback ran";
    EXPECT_EQ(first.calls->load(), 1);
    EXPECT_EQ(again.calls->load(), 1);
}

// 2. AUTH and SELECT.

TEST_F(RedisIoReaderTest, AuthThenSelectAreTheFirstBytesOfANewConnection) {
    start(answer_ok_and_empty, [](redis_config& rc) {
        rc.password = "s3cret pass";  // a space: each argument is a bulk string, sent as it is
        rc.db = 3;
    });
    std::string sent;
    ASSERT_NO_FATAL_FAILURE(read_k1_expecting_no_entry(sent));
    EXPECT_EQ(sent, resp_command({"AUTH", "s3cret pass"}) + resp_command({"SELECT", "3"}) +
                                       resp_command({"HGETALL", "fs:user_activity:k1"}));
}

TEST_F(RedisIoReaderTest, AnAclUserAuthenticatesWithItsNameThenItsPassword) {
    start(answer_ok_and_empty, [](redis_config& rc) {
        rc.username = "reader";
        rc.password = "pw";
    });
    std::string sent;
    ASSERT_NO_FATAL_FAILURE(read_k1_expecting_no_entry(sent));
    EXPECT_EQ(sent, resp_command({"AUTH", "reader", "pw"}) + resp_command({"HGETALL", "fs:user_activity:k1"}));
}

TEST_F(RedisIoReaderTest, WithoutPasswordOrDbNeitherAuthNorSelectIsSent) {
    start(answer_ok_and_empty);
    std::string sent;
    ASSERT_NO_FATAL_FAILURE(read_k1_expecting_no_entry(sent));
    EXPECT_EQ(sent, resp_command({"HGETALL", "fs:user_activity:k1"}));
}

TEST_F(RedisIoReaderTest, OnlyThePartsConfiguredAreSent) {
    start(answer_ok_and_empty, [](redis_config& rc) { rc.password = "pw"; });
    std::string sent;
    ASSERT_NO_FATAL_FAILURE(read_k1_expecting_no_entry(sent));
    EXPECT_EQ(sent, resp_command({"AUTH", "pw"}) + resp_command({"HGETALL", "fs:user_activity:k1"}));
}

TEST_F(RedisIoReaderTest, OnlySelectWhenOnlyTheDbIsSet) {
    start(answer_ok_and_empty, [](redis_config& rc) { rc.db = 15; });
    std::string sent;
    ASSERT_NO_FATAL_FAILURE(read_k1_expecting_no_entry(sent));
    EXPECT_EQ(sent, resp_command({"SELECT", "15"}) + resp_command({"HGETALL", "fs:user_activity:k1"}));
}

TEST_F(RedisIoReaderTest, ARefusedAuthFailsTheReadWithRedisReason) {
    start(
        [](std::size_t, const std::vector<std::string>& cmd) -> std::optional<std::string> {
            if (cmd.at(0) == "AUTH") return std::string("-WRONGPASS invalid username-password pair or user is disabled.\r\n");
            return std::string("-NOAUTH Authentication required.\r\n");
        },
        [](redis_config& rc) {
            rc.password = "wrong";
            rc.db = 2;
        });
    const auto asked = clock_type::now();
    const read_call call = read_one("k1");
    ASSERT_TRUE(call.accepted);
    const auto answer = call.wait(2s);
    ASSERT_TRUE(answer.has_value()) << "no answer after a refused AUTH";
    ASSERT_FALSE(answer->r.ok()) << "a read on a connection whose AUTH was refused succeeded";
    const std::string& why = answer->r.message();
    EXPECT_NE(why.find("AUTH"), std::string::npos) << why;
    EXPECT_NE(why.find("WRONGPASS invalid username-password pair"), std::string::npos) << why;
    EXPECT_EQ(why.find("NOAUTH"), std::string::npos) << "the read should report the AUTH refusal, not a later one: " << why;
    // At once, not after redis.timeout_ms.
    EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(answer->at - asked).count(), timeout_ms);
    EXPECT_EQ(command_names(redis_->commands(0)), (std::vector<std::string>{"AUTH", "SELECT", "HGETALL"}));
    EXPECT_TRUE(redis_->wait_closed(0, 2s)) << "the refused connection was not closed";
    // The failed connection is avoided: the next read goes another way.
    EXPECT_FALSE(read_one("k2").accepted);
    EXPECT_EQ(call.calls->load(), 1);
}

TEST_F(RedisIoReaderTest, ARefusedSelectFailsTheReadWithRedisReason) {
    start(
        [](std::size_t, const std::vector<std::string>& cmd) -> std::optional<std::string> {
            if (cmd.at(0) == "SELECT") return std::string("-ERR DB index is out of range\r\n");
            if (cmd.at(0) == "HGETALL") return std::string("*2\r\n$11\r\n_event_time\r\n$1\r\n5\r\n");
            return std::string("+OK\r\n");
        },
        [](redis_config& rc) {
            rc.password = "pw";
            rc.db = 99;
        });
    const read_call call = read_one("k1");
    ASSERT_TRUE(call.accepted);
    const auto answer = call.wait(2s);
    ASSERT_TRUE(answer.has_value()) << "no answer after a refused SELECT";
    // The hash that follows must not be taken: it would come from database 0.
    ASSERT_FALSE(answer->r.ok()) << "a read on a connection whose SELECT was refused succeeded";
    const std::string& why = answer->r.message();
    EXPECT_NE(why.find("SELECT"), std::string::npos) << why;
    EXPECT_NE(why.find("DB index is out of range"), std::string::npos) << why;
    EXPECT_EQ(command_names(redis_->commands(0)), (std::vector<std::string>{"AUTH", "SELECT", "HGETALL"}));
    EXPECT_FALSE(read_one("k2").accepted);
}

// 3. A reply after AUTH and SELECT are accepted.

TEST_F(RedisIoReaderTest, AHashAfterAuthAndSelectIsDecodedIntoTheEntry) {
    // The hash of the README's Stores: one field per value as its JSON text, plus _event_time; the fields in
    // another order than declared, and one the set does not declare.
    const std::string hash = "*10\r\n"
                             "$7\r\ncountry\r\n$4\r\n\"DE\"\r\n"
                             "$11\r\n_event_time\r\n$13\r\n1763719200123\r\n"
                             "$5\r\nspend\r\n$4\r\n12.5\r\n"
                             "$5\r\nextra\r\n$1\r\n1\r\n"
                             "$6\r\nclicks\r\n$2\r\n42\r\n";
    start(
        [hash](std::size_t, const std::vector<std::string>& cmd) -> std::optional<std::string> {
            if (cmd.at(0) != "HGETALL") return std::string("+OK\r\n");
            if (cmd.at(1) == "fs:user_activity:k1") return hash;
            return std::string("*0\r\n");
        },
        [](redis_config& rc) {
            rc.password = "pw";
            rc.db = 1;
        });

    // Two reads in the same turn: written together, answered in order.
    const auto calls = read({"k1", "missing"});
    ASSERT_TRUE(calls[0].accepted);
    ASSERT_TRUE(calls[1].accepted);
    const auto found = calls[0].wait(2s);
    const auto missing = calls[1].wait(2s);
    ASSERT_TRUE(found.has_value());
    ASSERT_TRUE(missing.has_value());
    ASSERT_TRUE(found->r.ok()) << found->r.message();
    ASSERT_TRUE(found->r.value().has_value());
    const latest_entry& e = *found->r.value();
    EXPECT_EQ(e.key, "k1");
    EXPECT_EQ(e.event_time_ms, 1763719200123);
    ASSERT_EQ(e.values.size(), 3u);
    EXPECT_EQ(e.values[0], value{std::int64_t{42}});
    EXPECT_EQ(e.values[1], value{12.5});
    EXPECT_EQ(e.values[2], value{std::string("DE")});
    EXPECT_TRUE(found->on_io_thread);
    ASSERT_TRUE(missing->r.ok()) << missing->r.message();
    EXPECT_FALSE(missing->r.value().has_value());

    // A later read uses the same connection: no second AUTH or SELECT.
    const read_call later = read_one("k1");
    ASSERT_TRUE(later.accepted);
    const auto again = later.wait(2s);
    ASSERT_TRUE(again.has_value());
    ASSERT_TRUE(again->r.ok()) << again->r.message();
    ASSERT_TRUE(again->r.value().has_value());
    EXPECT_EQ(again->r.value()->values[0], value{std::int64_t{42}});
    EXPECT_EQ(redis_->connections(), 1u);
    EXPECT_EQ(redis_->commands(0), (std::vector<std::vector<std::string>>{{"AUTH", "pw"},
                                                                           {"SELECT", "1"},
                                                                           {"HGETALL", "fs:user_activity:k1"},
                                                                           {"HGETALL", "fs:user_activity:missing"},
                                                                           {"HGETALL", "fs:user_activity:k1"}}));
    for (const auto& c : calls) EXPECT_EQ(c.calls->load(), 1);
}

TEST_F(RedisIoReaderTest, AHostNameIsResolvedAndConnected) {
    // A name, not an address: resolved asynchronously, then connected (the fake Redis listens on
    // 127.0.0.1; were "localhost" to give ::1 first, the next address would be tried).
    start(answer_ok_and_empty, [](redis_config& rc) { rc.host = "localhost"; });
    const read_call call = read_one("k1");
    ASSERT_TRUE(call.accepted);
    const auto answer = call.wait(2s);
    ASSERT_TRUE(answer.has_value());
    ASSERT_TRUE(answer->r.ok()) << answer->r.message();
    EXPECT_FALSE(answer->r.value().has_value());
    EXPECT_EQ(redis_->connections(), 1u);
}

}  // namespace
}  // namespace sluice
