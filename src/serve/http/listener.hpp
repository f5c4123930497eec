#pragma once
// Accepts TCP connections and starts one session per connection, each on its own strand.
// Owned by the server and by its pending accept; runs on its own strand of the io_context.

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

    net::io_context& ioc_;
    net::ip::tcp::acceptor acceptor_;
    net::steady_timer retry_timer_;
    std::shared_ptr<server_state> state_;
    std::uint16_t port_ = 0;
};

}  // namespace sluice::serve
