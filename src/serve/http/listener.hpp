#pragma once
// Accepts TCP connections and starts one session per connection, each on its own strand
// (TLS sessions when the server has a TLS context). Past http.max_connections a new connection
// is closed at once; accepting never stops. Owned by the server and by its pending accept;
// runs on its own strand of the io_context.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "server_state.hpp"
#include "sluice/core/result.hpp"

namespace sluice::serve {

/// "host:port", "[v6addr]:port" or ":port" → endpoint. Host names are resolved (start-up only).
result<net::ip::tcp::endpoint> parse_listen_address(const std::string& listen);

class listener : public std::enable_shared_from_this<listener> {
public:
    listener(net::io_context& ioc, std::shared_ptr<server_state> state);

    /// Opens, binds and listens; a failure names the endpoint and the reason.
    status open(const net::ip::tcp::endpoint& endpoint);
    /// Starts accepting.
    void run();
    /// Closes the acceptor. Only while no io thread runs (server stop).
    void close_now();
    std::uint16_t port() const { return port_; }

private:
    void do_accept();
    void on_accept(boost::system::error_code ec, net::ip::tcp::socket socket);
    void refuse(net::ip::tcp::socket& socket);

    net::io_context& ioc_;
    net::ip::tcp::acceptor acceptor_;
    net::steady_timer retry_timer_;
    std::shared_ptr<server_state> state_;
    std::uint16_t port_ = 0;
    // Connections refused at the cap since the last log line (at most one line a second).
    std::uint64_t refused_unlogged_ = 0;
    std::chrono::steady_clock::time_point last_refusal_log_{};
};

}  // namespace sluice::serve
