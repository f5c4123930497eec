#pragma once
// What every connection of one HTTP server shares: the dispatcher, the limits, the TLS context,
// the metrics sink and the registry of live connections (so stop() can close them, and the listener can count
// them against http.max_connections). Created by the server at start(); kept alive by the
// sessions and the listener as long as any of them exists.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include "dispatch.hpp"

namespace sluice {
class telemetry;
}

namespace sluice::serve {

namespace net = boost::asio;

/// Each io_context is run by one thread: its own executor type (no type erasure, no strand).
using io_executor = net::io_context::executor_type;
using io_socket = net::basic_stream_socket<net::ip::tcp, io_executor>;

/// One live connection as the server sees it (the session, whatever its stream type).
class connection {
public:
    virtual ~connection() = default;
    /// Closes the socket. Only while no io thread runs (server stop).
    virtual void close_now() = 0;
};

struct server_limits {
    std::uint64_t body_limit_bytes = 1048576;
    std::uint32_t header_limit_bytes = 8192;
    std::chrono::milliseconds read_timeout{10000};   // whole request, from its first byte; TLS handshake
    std::chrono::milliseconds idle_timeout{60000};   // keep-alive wait for the next request
    std::chrono::milliseconds write_timeout{10000};  // one response
    std::chrono::milliseconds linger_timeout{2000};  // draining the client after an error
    std::size_t max_connections = 10000;             // open at once; more are closed at accept
};

/// What a config gives the server: the routes, keys, rate limit and limits of every request
/// that starts while it is current. A reload installs a new one; a request keeps the one it
/// started with to its answer, so it never sees half of each.
struct server_generation {
    std::shared_ptr<const config> cfg;  // the routes' feature set views point into it
    dispatcher dispatch;
    server_limits limits;
};

class server_state {
public:
    using registry_entry = std::list<std::weak_ptr<connection>>::iterator;

    explicit server_state(std::shared_ptr<const server_generation> g) : log(http_logger()), generation_(std::move(g)) {}

    /// The generation a request starting now uses.
    std::shared_ptr<const server_generation> current() const { return generation_.load(std::memory_order_acquire); }
    void install(std::shared_ptr<const server_generation> g) { generation_.store(std::move(g), std::memory_order_release); }

    const std::shared_ptr<spdlog::logger> log;  // looked up once: spdlog::get takes a global lock
    std::shared_ptr<net::ssl::context> tls;  // null: plain HTTP
    telemetry* metrics = nullptr;            // null: requests are not counted

    /// Registers a new connection; it counts against max_connections until removed.
    registry_entry add(std::weak_ptr<connection> c) {
        std::lock_guard lock(mutex_);
        open_.fetch_add(1, std::memory_order_relaxed);
        return connections_.insert(connections_.end(), std::move(c));
    }
    void remove(registry_entry it) {
        std::lock_guard lock(mutex_);
        connections_.erase(it);
        open_.fetch_sub(1, std::memory_order_relaxed);
    }
    /// Connections open now (registered and not yet destroyed).
    std::size_t open_connections() const { return open_.load(std::memory_order_relaxed); }

    /// The connections still alive. The caller drops the pointers outside the registry lock.
    std::vector<std::shared_ptr<connection>> live() {
        std::vector<std::shared_ptr<connection>> out;
        std::lock_guard lock(mutex_);
        for (auto& w : connections_)
            if (auto c = w.lock()) out.push_back(std::move(c));
        return out;
    }

private:
    std::atomic<std::shared_ptr<const server_generation>> generation_;
    std::mutex mutex_;
    std::list<std::weak_ptr<connection>> connections_;
    std::atomic<std::size_t> open_{0};
};

}  // namespace sluice::serve
