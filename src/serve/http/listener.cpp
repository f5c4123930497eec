#include "listener.hpp"

#include <unistd.h>

#include <boost/asio/dispatch.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <spdlog/spdlog.h>

#include "session.hpp"

namespace sluice::serve {

result<tcp::endpoint> parse_listen_address(const std::string& listen) {
    using R = result<tcp::endpoint>;
    std::string host;
    std::string port_text;
    if (!listen.empty() && listen.front() == '[') {
        const std::size_t close = listen.find(']');
        if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':')
            return R::failure("http.listen '" + listen + "' is not host:port");
        host = listen.substr(1, close - 1);
        port_text = listen.substr(close + 2);
    } else {
        const std::size_t colon = listen.rfind(':');
        if (colon == std::string::npos) return R::failure("http.listen '" + listen + "' is not host:port");
        host = listen.substr(0, colon);
        port_text = listen.substr(colon + 1);
    }
    if (port_text.empty() || port_text.size() > 5 || port_text.find_first_not_of("0123456789") != std::string::npos)
        return R::failure("http.listen '" + listen + "': the port must be a number from 0 to 65535");
    const unsigned long port = std::stoul(port_text);
    if (port > 65535) return R::failure("http.listen '" + listen + "': the port must be a number from 0 to 65535");
    const auto p = static_cast<std::uint16_t>(port);
    if (host.empty() || host == "*") return tcp::endpoint(tcp::v4(), p);

    boost::system::error_code ec;
    const auto address = net::ip::make_address(host, ec);
    if (!ec) return tcp::endpoint(address, p);

    // A host name: resolve it once, at start-up (a blocking lookup is fine here).
    net::io_context ioc;
    tcp::resolver resolver(ioc);
    auto results = resolver.resolve(host, port_text, tcp::resolver::passive, ec);
    if (ec || results.empty())
        return R::failure("http.listen '" + listen + "': cannot resolve '" + host + "': " + ec.message());
    return results.begin()->endpoint();
}

listener::listener(std::vector<std::shared_ptr<net::io_context>> iocs, std::shared_ptr<server_state> state)
    : iocs_(iocs.begin(), iocs.end()), acceptor_(iocs.front()->get_executor()), retry_timer_(iocs.front()->get_executor()),
      state_(std::move(state)) {}

status listener::open(const tcp::endpoint& endpoint) {
    boost::system::error_code ec;
    const auto where = [&] {
        return endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
    };
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
        boost::system::error_code ignored;
        acceptor_.close(ignored);
        return status::failure("http: cannot listen on " + where() + ": " + ec.message());
    }
    port_ = acceptor_.local_endpoint(ec).port();
    return status::success();
}

void listener::run() {
    net::dispatch(acceptor_.get_executor(), beast::bind_front_handler(&listener::do_accept, shared_from_this()));
}

void listener::close_now() {
    boost::system::error_code ec;
    retry_timer_.cancel();
    acceptor_.close(ec);
}

void listener::do_accept() {
    // Accepted on the listener's own io_context (a pending accept must not hold a socket of
    // another io_context, which may be destroyed first), then moved to the next one in turn.
    acceptor_.async_accept(beast::bind_front_handler(&listener::on_accept, shared_from_this()));
}

void listener::on_accept(boost::system::error_code ec, io_socket accepted) {
    if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) {
        // E.g. out of file descriptors: wait a little instead of spinning on the error.
        state_->log->warn("http: accept failed: {}", ec.message());
        retry_timer_.expires_after(std::chrono::milliseconds(100));
        retry_timer_.async_wait([self = shared_from_this()](boost::system::error_code wait_ec) {
            if (!wait_ec) self->do_accept();
        });
        return;
    }
    if (state_->open_connections() >= state_->current()->limits.max_connections) {
        refuse(accepted);
        return do_accept();
    }
    const auto ioc = iocs_[next_].lock();
    next_ = (next_ + 1) % iocs_.size();
    if (!ioc) return;  // the server is going away
    boost::system::error_code move_ec;
    const auto protocol = accepted.local_endpoint(move_ec).protocol();
    io_socket socket(*ioc);
    if (!move_ec) {
        const auto fd = accepted.release(move_ec);
        if (!move_ec) {
            socket.assign(protocol, fd, move_ec);
            if (move_ec) ::close(fd);
        }
    }
    if (move_ec) {
        state_->log->warn("http: could not hand an accepted connection to an io thread: {}", move_ec.message());
        return do_accept();
    }
    boost::system::error_code opt_ec;
    socket.set_option(tcp::no_delay(true), opt_ec);
    if (state_->tls)
        std::make_shared<session<tls_stream>>(std::move(socket), ioc, state_)->run();
    else
        std::make_shared<session<plain_stream>>(std::move(socket), ioc, state_)->run();
    do_accept();
}

void listener::refuse(io_socket& socket) {
    // Closed before anything is read: the cheapest answer, and the client sees it at once.
    boost::system::error_code ec;
    socket.close(ec);
    ++refused_unlogged_;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_refusal_log_ < std::chrono::seconds(1)) return;
    state_->log->warn("http: {} connections open, the limit (http.max_connections); closed {} new connection(s)",
                      state_->open_connections(), refused_unlogged_);
    refused_unlogged_ = 0;
    last_refusal_log_ = now;
}

}  // namespace sluice::serve
