#include "session.hpp"

#include <array>
#include <atomic>
#include <cctype>
#include <functional>
#include <random>
#include <thread>

#include <boost/asio/buffer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include "framing.hpp"
#include "sluice/serve/services.hpp"

namespace sluice::serve {

namespace {

// Chunk framing, extensions and trailers are not bounded by Beast 1.74's body limit: the
// whole request (header + framed body) is bounded by this many bytes instead.
std::uint64_t request_byte_limit(const server_limits& l) {
    return l.header_limit_bytes + 2 * l.body_limit_bytes + 65536;
}

// The buffer holds at most one header plus one read's worth of data, so a single endless
// line (chunk extension, trailer) fails as buffer_overflow instead of growing without bound.
std::size_t buffer_limit(const server_limits& l) { return std::size_t{l.header_limit_bytes} + 65536; }

constexpr std::uint64_t linger_max_bytes = 4 * 1024 * 1024;

bool is_http_error(const beast::error_code& ec) {
    return ec.category() == beast::error_code(http::error::bad_target).category();
}

// The remote address as raw bytes (4 or 16): cheap to compare, and a bucket key of its own.
std::string peer_bytes(const io_socket& socket) {
    beast::error_code ec;
    const auto endpoint = socket.remote_endpoint(ec);
    if (ec) return {};
    const auto address = endpoint.address();
    if (address.is_v4()) {
        const auto b = address.to_v4().to_bytes();
        return std::string(reinterpret_cast<const char*>(b.data()), b.size());
    }
    const auto b = address.to_v6().to_bytes();
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// A new request id: 16 hex digits, random per process and thread.
std::string new_request_id() {
    thread_local std::mt19937_64 random{std::random_device{}() ^
                                        static_cast<std::uint64_t>(std::hash<std::thread::id>{}(std::this_thread::get_id()))};
    static constexpr char digits[] = "0123456789abcdef";
    std::uint64_t n = random();
    std::string id(16, '0');
    for (int i = 15; i >= 0; --i, n >>= 4) id[static_cast<std::size_t>(i)] = digits[n & 15];
    return id;
}

// The client's X-Request-Id when it sent one that is safe to log and echo (1..128 characters of
// letters, digits and "-_.:"; a proxy in front usually sets it), else a new one.
std::string request_id_of(const request& req) {
    if (req.count("X-Request-Id") != 1) return new_request_id();
    const std::string_view v = req["X-Request-Id"];
    if (v.empty() || v.size() > 128) return new_request_id();
    for (char c : v)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' && c != ':')
            return new_request_id();
    return std::string(v);
}

// A handler's answer: delivered at most once. An answer given while dispatch() runs (memory
// reads, errors) or later on the session's own thread (Redis replies) is written at once; one
// that comes from another thread is posted to the session's io_context. Holds the io_context so
// that an answer arriving after the server stopped still has a queue to go to (it is then
// dropped with the io_context). Member order matters: the session goes first.
template <class Session>
struct pending_answer {
    std::shared_ptr<net::io_context> ioc;
    std::shared_ptr<Session> self;
    std::atomic<bool> answered{false};
};

// The session whose request this thread is dispatching now (answers given during dispatch()).
thread_local const void* dispatching = nullptr;

}  // namespace

template <>
session<plain_stream>::session(io_socket&& socket, const std::shared_ptr<net::io_context>& ioc,
                               std::shared_ptr<server_state> state)
    : stream_(std::move(socket)), ioc_(ioc), buffer_(buffer_limit(state->current()->limits)), state_(std::move(state)),
      gen_(state_->current()), peer_(peer_bytes(stream_.socket())) {}

template <>
session<tls_stream>::session(io_socket&& socket, const std::shared_ptr<net::io_context>& ioc,
                             std::shared_ptr<server_state> state)
    : stream_(std::move(socket), *state->tls), ioc_(ioc), buffer_(buffer_limit(state->current()->limits)),
      state_(std::move(state)), gen_(state_->current()), peer_(peer_bytes(beast::get_lowest_layer(stream_).socket())) {}

template <class Stream>
session<Stream>::~session() {
    if (registered_) state_->remove(*registered_);
}

template <class Stream>
void session<Stream>::run() {
    registered_ = state_->add(this->weak_from_this());
    net::dispatch(tcp_layer().get_executor(), beast::bind_front_handler(&session::start, this->shared_from_this()));
}

template <class Stream>
void session<Stream>::close_now() {
    if (ex_) ex_->release();  // an export waiting to write learns the client has gone
    beast::error_code ec;
    tcp_layer().socket().shutdown(tcp::socket::shutdown_both, ec);
    tcp_layer().close();
}

template <class Stream>
void session<Stream>::start() {
    if constexpr (is_tls) {
        // The handshake is bounded like a request: a client that never finishes it is cut off.
        tcp_layer().expires_after(gen_->limits.read_timeout);
        stream_.async_handshake(net::ssl::stream_base::server,
                                beast::bind_front_handler(&session::on_handshake, this->shared_from_this()));
    } else {
        read_request();
    }
}

template <class Stream>
void session<Stream>::on_handshake(beast::error_code ec) {
    if (ec) {
        state_->log->debug("http: TLS handshake failed: {}", ec.message());
        tcp_layer().close();
        return;
    }
    read_request();
}

template <class Stream>
void session<Stream>::read_request() {
    gen_ = state_->current();
    request_id_.clear();
    const server_limits& l = gen_->limits;
    parser_.emplace();
    parser_->header_limit(l.header_limit_bytes);
    // Beast checks a Content-Length against the limit as the header ends, before the route is
    // known: the larger of the two limits here, the route's own checked in on_header and on_body.
    parser_->body_limit(std::max<std::uint64_t>(l.body_limit_bytes, gen_->dispatch.streamed_body_limit));
    request_bytes_ = 0;
    route_ = unmatched_route;
    streamed_route_ = false;
    method_ = http::verb::unknown;
    started_ = std::chrono::steady_clock::now();
    // A header already whole in the buffer (the usual case: one read brought the request) is
    // parsed here, without another turn of the io_context and its timer.
    if (buffer_.size() > 0) {
        beast::error_code ec;
        const std::size_t used = parser_->put(buffer_.data(), ec);
        buffer_.consume(used);
        if (ec != http::error::need_more) {
            if (ec || !parser_->is_done()) tcp_layer().expires_after(l.read_timeout);  // the body is still to come
            return on_header(ec, used);
        }
        request_bytes_ += used;
    }
    // One deadline for the whole request: a client that trickles bytes is still cut off.
    tcp_layer().expires_after(l.read_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&session::on_header, this->shared_from_this()));
}

template <class Stream>
void session<Stream>::on_header(beast::error_code ec, std::size_t bytes) {
    if (ec) return on_read_error(ec);
    request_bytes_ += bytes;
    const request& req = parser_->get();
    method_ = req.method();

    // Refuse framing that lets two parties disagree on where the body ends.
    if (const std::string_view why = framing_error(req); !why.empty())
        return fail(http::status::bad_request, "bad_request", std::string(why));

    bool body_streams = false;
    streamed_route_ = gen_->dispatch.streamed(req, body_streams);
    const bool streamed = streamed_route_ && body_streams;
    const std::uint64_t limit = streamed ? gen_->dispatch.streamed_body_limit : gen_->limits.body_limit_bytes;
    if (const auto length = parser_->content_length(); length && *length > limit)
        return fail(http::status::payload_too_large, "payload_too_large",
                    streamed ? "the entity rows are larger than training.body_limit_bytes (" + std::to_string(limit) + " bytes)"
                             : "the request body is larger than " + std::to_string(limit) + " bytes");
    parser_->body_limit(limit);  // a chunked body: Beast counts its chunks against it
    if (streamed && !parser_->is_done()) return start_exchange(true);
    if (parser_->is_done()) return handle_request();
    if (beast::iequals(trim_ows(req[http::field::expect]), "100-continue")) {
        continue_.emplace(http::status::continue_, req.version());
        http::async_write(stream_, *continue_,
                          beast::bind_front_handler(&session::on_continue_written, this->shared_from_this()));
        return;
    }
    read_body();
}

template <class Stream>
void session<Stream>::on_continue_written(beast::error_code ec, std::size_t) {
    continue_.reset();
    if (ec) return on_read_error(ec);
    read_body();
}

template <class Stream>
void session<Stream>::read_body() {
    http::async_read_some(stream_, buffer_, *parser_,
                          beast::bind_front_handler(&session::on_body, this->shared_from_this()));
}

template <class Stream>
void session<Stream>::on_body(beast::error_code ec, std::size_t bytes) {
    if (ec) return on_read_error(ec);
    request_bytes_ += bytes;
    if (request_bytes_ > request_byte_limit(gen_->limits))
        return fail(http::status::payload_too_large, "payload_too_large",
                    "the request is larger than " + std::to_string(gen_->limits.body_limit_bytes) + " bytes");
    if (parser_->is_done()) return handle_request();
    read_body();
}

template <class Stream>
void session<Stream>::on_read_error(beast::error_code ec) {
    const auto& log = state_->log;
    if (ec == http::error::end_of_stream || ec == net::error::operation_aborted ||
        ec == net::ssl::error::stream_truncated) {
        beast::error_code ignored;
        tcp_layer().socket().shutdown(tcp::socket::shutdown_both, ignored);
        tcp_layer().close();
        return;
    }
    if (ec == beast::error::timeout) {
        // tcp_stream has already closed the socket.
        log->debug("http: closed a connection that sent no complete request within {} ms",
                   gen_->limits.read_timeout.count());
        return;
    }
    const bool header_done = parser_ && parser_->is_header_done();
    if (ec == http::error::body_limit || (ec == http::error::buffer_overflow && header_done))
        return fail(http::status::payload_too_large, "payload_too_large",
                    "the request body is larger than " + std::to_string(gen_->limits.body_limit_bytes) + " bytes");
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow)
        return fail(http::status::request_header_fields_too_large, "headers_too_large",
                    "the request header is larger than " + std::to_string(gen_->limits.header_limit_bytes) +
                        " bytes");
    if (ec == http::error::partial_message) {
        log->debug("http: client closed the connection in the middle of a request");
        return;
    }
    if (is_http_error(ec))
        return fail(http::status::bad_request, "bad_request", "malformed HTTP request: " + ec.message());
    log->debug("http: connection error: {}", ec.message());
}

template <class Stream>
void session<Stream>::handle_request() {
    if (streamed_route_) return start_exchange(false);  // on_header found the route streams
    const request& req = parser_->get();
    request_id_ = request_id_of(req);
    keep_alive_ = req.keep_alive();
    version_ = req.version();

    using answer_t = pending_answer<session>;
    auto answer = std::make_shared<answer_t>();
    answer->ioc = ioc_.lock();
    answer->self = this->shared_from_this();
    responder respond = [answer](response res) {
        if (answer->answered.exchange(true)) return;
        auto& self = answer->self;
        if (dispatching == self.get()) {  // still inside dispatch() on the session's thread
            self->inline_answer_.emplace(std::move(res));
            return;
        }
        if (self->tcp_layer().get_executor().running_in_this_thread()) {  // e.g. a Redis reply on this thread
            self->send_response(std::move(res));
            return;
        }
        net::post(self->tcp_layer().get_executor(),
                  [self, res = std::move(res)]() mutable { self->send_response(std::move(res)); });
    };
    {
        struct scope {
            explicit scope(const void* s) { dispatching = s; }
            ~scope() { dispatching = nullptr; }
        } during(this);
        route_ = gen_->dispatch.dispatch(req, peer_, request_id_, respond);
    }
    if (inline_answer_) {
        response res = std::move(*inline_answer_);
        inline_answer_.reset();
        return send_response(std::move(res));
    }
    // The answer comes later: no read deadline while the handler works.
    tcp_layer().expires_never();
}

// A streamed exchange: dispatched with its header (and, unless the body streams, its body); the
// handler answers through ex_. The connection closes after it.
template <class Stream>
void session<Stream>::start_exchange(bool body_streams) {
    const request& req = parser_->get();
    request_id_ = request_id_of(req);
    keep_alive_ = false;
    version_ = req.version();
    const bool expect_continue = body_streams && beast::iequals(trim_ows(req[http::field::expect]), "100-continue");
    if (body_streams) tcp_layer().expires_never();
    auto executor = tcp_layer().get_executor();
    auto self = this->shared_from_this();
    ex_ = std::make_shared<stream_exchange>(request_id_, version_, body_streams, [self, executor] {
        net::post(executor, [self] { self->pump_exchange(); });
    });

    using answer_t = pending_answer<session>;
    auto answer = std::make_shared<answer_t>();
    answer->ioc = ioc_.lock();
    answer->self = self;
    responder respond = [answer](response res) {  // the dispatcher's own refusals (401, 403, 429, 404)
        if (answer->answered.exchange(true)) return;
        auto& s = answer->self;
        if (dispatching == s.get()) {
            s->inline_answer_.emplace(std::move(res));
            return;
        }
        net::post(s->tcp_layer().get_executor(), [s, res = std::move(res)]() mutable { s->send_response(std::move(res)); });
    };
    {
        struct scope {
            explicit scope(const void* s) { dispatching = s; }
            ~scope() { dispatching = nullptr; }
        } during(this);
        route_ = gen_->dispatch.dispatch(req, peer_, request_id_, respond, ex_);
    }
    if (inline_answer_) {
        ex_->release();
        ex_.reset();
        response res = std::move(*inline_answer_);
        inline_answer_.reset();
        return send_response(std::move(res));
    }
    if (!body_streams) return;
    if (expect_continue) ex_->continue_first();
    pump_exchange();
    read_streamed_body();
}

template <class Stream>
void session<Stream>::read_streamed_body() {
    reading_ = true;
    tcp_layer().expires_after(gen_->limits.read_timeout);  // from the last progress
    http::async_read_some(stream_, buffer_, *parser_,
                          beast::bind_front_handler(&session::on_streamed_body, this->shared_from_this()));
}

template <class Stream>
void session<Stream>::on_streamed_body(beast::error_code ec, std::size_t) {
    reading_ = false;
    auto& body = parser_->get().body();
    if (ex_ && !body.empty()) (void)ex_->body_bytes(body);
    body.clear();
    if (ec) {
        if (ex_) {
            if (ec == http::error::body_limit)
                ex_->body_failed("the entity rows are larger than training.body_limit_bytes (" +
                                     std::to_string(gen_->dispatch.streamed_body_limit) + " bytes)",
                                 error_kind::permanent);
            else
                ex_->body_failed("the request body broke off: " + ec.message(), error_kind::retryable);
        }
        if (linger_after_read_ || !ex_) {
            linger_after_read_ = false;
            tcp_layer().close();
        }
        return;
    }
    if (parser_->is_done()) {
        if (ex_) ex_->body_end();
        if (linger_after_read_) {
            linger_after_read_ = false;
            linger();
        }
        return;
    }
    if (linger_after_read_) {  // the answer is out: drain the rest and close
        linger_after_read_ = false;
        return linger();
    }
    read_streamed_body();
}

// Writes what the exchange has queued, one write at a time.
template <class Stream>
void session<Stream>::pump_exchange() {
    if (!ex_ || ex_writing_) return;
    auto p = ex_->take();
    if (p.broken) return end_exchange(true);
    if (p.bytes.empty()) {
        if (p.last) end_exchange(false);
        return;
    }
    ex_out_ = std::move(p.bytes);
    ex_last_ = p.last;
    ex_writing_ = true;
    tcp_layer().expires_after(gen_->limits.write_timeout);  // from the last progress
    net::async_write(stream_, net::buffer(ex_out_), [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
        self->ex_writing_ = false;
        if (!self->ex_) return;
        if (ec) {
            self->state_->log->debug("http: writing a streamed answer failed: {}", ec.message());
            return self->end_exchange(true);
        }
        self->ex_->sent(n);
        if (self->ex_last_) return self->end_exchange(false);
        self->pump_exchange();
    });
}

// The exchange is over: counted, then the connection closes (drained first unless broken).
template <class Stream>
void session<Stream>::end_exchange(bool broken) {
    const unsigned status = ex_->answer_status();
    ex_->release();
    ex_.reset();
    observe(route_, method_, broken && status == 200 ? 500 : (status == 0 ? 500 : status));
    if (broken) {
        beast::error_code ec;
        tcp_layer().socket().set_option(net::socket_base::linger(true, 0), ec);  // a reset, not a clean end
        tcp_layer().close();
        return;
    }
    if (reading_) {
        linger_after_read_ = true;
        return;
    }
    linger();
}

template <class Stream>
void session<Stream>::observe(std::string_view route, http::verb method, unsigned status) {
    if (state_->metrics == nullptr) return;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    state_->metrics->observe_request(route, method_label(method), static_cast<int>(status), seconds);
}

template <class Stream>
void session<Stream>::send_response(response res) {
    if (state_->log->should_log(spdlog::level::debug)) {
        const request& req = parser_->get();
        const auto elapsed =
            std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started_);
        state_->log->debug("http: {} {} -> {} in {:.3f} ms request_id={}", std::string(req.method_string()),
                           std::string(split_target(req.target()).first), res.result_int(),
                           static_cast<double>(elapsed.count()) / 1000.0, request_id_);
    }
    observe(route_, method_, res.result_int());
    const bool close = !keep_alive_;
    write(std::move(res), close);
}

template <class Stream>
void session<Stream>::fail(http::status status, const char* code, const std::string& message) {
    state_->log->debug("http: refusing a request: {} {}", static_cast<unsigned>(status), message);
    if (parser_ && parser_->is_header_done()) version_ = parser_->get().version();
    observe(unmatched_route, method_, static_cast<unsigned>(status));
    write(error_response(status, code, message), true);
}

template <class Stream>
void session<Stream>::write(response res, bool close) {
    if (request_id_.empty()) request_id_ = new_request_id();
    res.set("X-Request-Id", request_id_);
    res_.emplace(std::move(res));
    // The status line and fields as text, then the body as it is: one gather write, without
    // Beast's serializer (its buffer sequence machinery cost more than the rest of a small
    // answer). The framing fields are the session's to write: Server, Content-Length, Connection.
    const unsigned status = res_->result_int();
    const bool no_body = status / 100 == 1 || status == 204 || status == 304;
    head_.clear();
    head_ += version_ == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    head_ += std::to_string(status);
    head_ += ' ';
    head_.append(res_->reason());
    head_ += "\r\n";
    for (const auto& field : *res_) {
        const http::field name = field.name();
        if (name == http::field::server || name == http::field::content_length || name == http::field::connection ||
            name == http::field::transfer_encoding)
            continue;
        head_.append(field.name_string());
        head_ += ": ";
        head_.append(field.value());
        head_ += "\r\n";
    }
    head_ += "Server: sluice\r\n";
    if (!no_body) {
        head_ += "Content-Length: ";
        head_ += std::to_string(res_->body().size());
        head_ += "\r\n";
    }
    if (close)
        head_ += "Connection: close\r\n";
    else if (version_ == 10)
        head_ += "Connection: keep-alive\r\n";
    head_ += "\r\n";
    unsent_ = {net::buffer(head_), no_body ? net::const_buffer() : net::buffer(res_->body())};
    if constexpr (!is_tls) {
        // Most answers fit the socket's send buffer: written now, without an asynchronous write
        // and its timer; what does not fit is written asynchronously with the write deadline.
        auto& socket = tcp_layer().socket();
        beast::error_code ec;
        if (!socket.non_blocking()) socket.non_blocking(true, ec);
        if (!ec) {  // else everything is written asynchronously
            const std::size_t sent = socket.write_some(unsent_, ec);
            consume_unsent(sent);
            if (!ec && net::buffer_size(unsent_) == 0) return on_write(close, ec, sent);
            if (ec && ec != net::error::would_block && ec != net::error::try_again) return on_write(close, ec, sent);
        }
    }
    // Until the rest is written, a close (the write deadline passing, or the server stopping)
    // resets the connection: what the client did not take is dropped from the kernel's send
    // queue instead of staying there after the session is gone.
    beast::error_code ec;
    tcp_layer().socket().set_option(net::socket_base::linger(true, 0), ec);
    write_unsent(close);
}

template <class Stream>
void session<Stream>::consume_unsent(std::size_t bytes) {
    for (auto& b : unsent_) {
        const std::size_t skip = std::min(bytes, b.size());
        b += skip;
        bytes -= skip;
    }
}

// The rest of an answer, a piece at a time: the write deadline runs from the last progress, so a
// client that reads slowly but steadily gets a large answer whole, and one that stops reading is
// cut off after write_timeout.
template <class Stream>
void session<Stream>::write_unsent(bool close) {
    tcp_layer().expires_after(gen_->limits.write_timeout);
    stream_.async_write_some(unsent_, [self = this->shared_from_this(), close](beast::error_code ec, std::size_t bytes) {
        if (!ec) {
            self->consume_unsent(bytes);
            if (net::buffer_size(self->unsent_) > 0) return self->write_unsent(close);
            beast::error_code linger_ec;  // written: closes are graceful again
            self->tcp_layer().socket().set_option(net::socket_base::linger(false, 0), linger_ec);
        }
        self->on_write(close, ec, bytes);
    });
}

template <class Stream>
void session<Stream>::on_write(bool close, beast::error_code ec, std::size_t) {
    res_.reset();
    if (ec) {
        state_->log->debug("http: writing a response failed: {}", ec.message());
        return;
    }
    if (close) {
        if (reading_) {  // a streamed body's read is in flight: linger once it completes
            linger_after_read_ = true;
            return;
        }
        return linger();
    }
    wait_next_request();
}

template <class Stream>
void session<Stream>::wait_next_request() {
    parser_.reset();
    if (buffer_.size() > 0) {  // a pipelined request already here: on the next turn (no recursion)
        net::post(tcp_layer().get_executor(), beast::bind_front_handler(&session::read_request, this->shared_from_this()));
        return;
    }
    // Idle keep-alive connection: wait up to idle_timeout for the next request's first byte.
    tcp_layer().expires_after(gen_->limits.idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096),
                            beast::bind_front_handler(&session::on_first_byte, this->shared_from_this()));
}

template <class Stream>
void session<Stream>::on_first_byte(beast::error_code ec, std::size_t bytes) {
    if (ec) {
        tcp_layer().close();
        return;
    }
    buffer_.commit(bytes);
    read_request();
}

// Closing a socket with unread input makes the kernel send RST, which can destroy the error
// response before the client reads it. So: stop sending, drain what the client still sends
// for a short while, then close. Over TLS the same is done by the TLS shutdown exchange.
template <class Stream>
void session<Stream>::linger() {
    tcp_layer().expires_after(gen_->limits.linger_timeout);
    if constexpr (is_tls) {
        stream_.async_shutdown(beast::bind_front_handler(&session::on_tls_shutdown, this->shared_from_this()));
    } else {
        beast::error_code ec;
        tcp_layer().socket().shutdown(tcp::socket::shutdown_send, ec);
        if (ec) {
            tcp_layer().close();
            return;
        }
        buffer_.consume(buffer_.size());
        linger_bytes_ = 0;
        read_linger();
    }
}

template <class Stream>
void session<Stream>::on_tls_shutdown(beast::error_code) {
    tcp_layer().close();
}

template <class Stream>
void session<Stream>::read_linger() {
    tcp_layer().async_read_some(buffer_.prepare(4096),
                                beast::bind_front_handler(&session::on_linger, this->shared_from_this()));
}

template <class Stream>
void session<Stream>::on_linger(beast::error_code ec, std::size_t bytes) {
    linger_bytes_ += bytes;
    if (ec || linger_bytes_ > linger_max_bytes) {
        tcp_layer().close();
        return;
    }
    read_linger();
}

template class session<plain_stream>;
template class session<tls_stream>;

}  // namespace sluice::serve
