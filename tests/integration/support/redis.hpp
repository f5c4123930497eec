#pragma once
// A throw-away Redis 7 server for integration tests, and a small hiredis client.
//
// redis_server runs `redis-server` as a child on a free 127.0.0.1 port with persistence off and
// its dir in a private temp dir. Owned by a test fixture, driven from the test thread; stop()
// and start() (same port, empty data) let a test take Redis away from the daemon. The
// destructor stops it; a crash of the test binary takes it down too.

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "integration/support/process.hpp"
#include "integration/support/temp_dir.hpp"

struct redisContext;

namespace sluice::it {

class redis_server {
public:
    /// Starts and waits for PING; throws std::runtime_error (with the log) on failure.
    redis_server();
    ~redis_server();
    redis_server(const redis_server&) = delete;
    redis_server& operator=(const redis_server&) = delete;

    void start(std::chrono::seconds timeout = std::chrono::seconds(30));
    /// SIGTERM (no save); SIGKILL after `grace`.
    void stop(std::chrono::seconds grace = std::chrono::seconds(10));
    bool running();

    int port() const { return port_; }
    std::string log_tail(std::size_t max_bytes = 8192) const;

private:
    temp_dir dir_;
    int port_ = 0;
    std::optional<child_process> proc_;
};

/// One reply, flattened: strings (status, bulk, error text) in `str`, integers in `integer`,
/// arrays in `elements`.
struct redis_reply {
    enum class kind { nil, string, status, error, integer, array } type = kind::nil;
    std::string str;
    long long integer = 0;
    std::vector<redis_reply> elements;
};

/// One hiredis connection with a 2 s timeout; owned by a test, used from one thread. Throws
/// std::runtime_error when the connection fails (error replies are returned, not thrown).
class redis_client {
public:
    explicit redis_client(int port, const std::string& host = "127.0.0.1");
    ~redis_client();
    redis_client(const redis_client&) = delete;
    redis_client& operator=(const redis_client&) = delete;

    redis_reply command(const std::vector<std::string>& argv);
    bool ping();
    std::map<std::string, std::string> hgetall(const std::string& key);
    /// Seconds; -1 no expiry, -2 no such key (Redis' own convention).
    long long ttl(const std::string& key);

private:
    redisContext* ctx_ = nullptr;
};

}  // namespace sluice::it
