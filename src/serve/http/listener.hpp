#pragma once
// Accepts TCP connections and starts one session per connection (TLS sessions when the server
// has a TLS context), handing the connections to the io_contexts in turn: each io_context is run
// by one thread, so a session's handlers never run concurrently and need no strand. Past
// http.max_connections a new connection is closed at once; accepting never stops. Owned by the
// server and by its pending accept; runs on the first io_context.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "server_state.hpp"
#include "sluice/core/result.hpp"

namespace sluice::serve {

/// "host:port", "[v6addr]:port" or ":port" → endpoint. Host names are resolved (start-up only).
result<net::ip::tcp::endpoint> parse_listen_address(const std::string& listen);

class listener : public std::enable_shared_from_this<listener> {
public:
    /// Accepts on iocs[0]; connections go to iocs[0], iocs[1], ... in turn.
    listener(std::vector<std::shared_ptr<net::io_context>> iocs, std::shared_ptr<server_state> state);

    /// Opens, binds and listens; a failure names the endpoint and the reason.
    status open(const net::ip::tcp::endpoint& endpoint);
    /// Starts accepting.
    void run();
    /// Closes the acceptor. Only while no io thread runs (server stop).
    void close_now();
    std::uint16_t port() const { return port_; }

private:
    void do_accept();
    void on_accept(boost::system::error_code ec, io_socket accepted);
    void refuse(io_socket& socket);

    // Weak: the pending accept (which holds the listener) lives in iocs[0], which must still be
    // destroyed with the server.
    std::vector<std::weak_ptr<net::io_context>> iocs_;
    std::size_t next_ = 0;  // the io_context of the next connection
    net::basic_socket_acceptor<net::ip::tcp, io_executor> acceptor_;
    net::basic_waitable_timer<std::chrono::steady_clock, net::wait_traits<std::chrono::steady_clock>, io_executor>
        retry_timer_;
    std::shared_ptr<server_state> state_;
    std::uint16_t port_ = 0;
    // Connections refused at the cap since the last log line (at most one line a second).
    std::uint64_t refused_unlogged_ = 0;
    std::chrono::steady_clock::time_point last_refusal_log_{};
};

}  // namespace sluice::serve
