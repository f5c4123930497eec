#include "sluice/store/redis_io_reader.hpp"

#include <charconv>
#include <chrono>
#include <deque>
#include <memory>
#include <string_view>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "resp.hpp"
#include "sluice/core/io_thread.hpp"
#include "sluice/store/redis_cache.hpp"

namespace sluice {

namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using clock_type = std::chrono::steady_clock;

// After a failed connection, reads go another way for this long before it is tried again.
constexpr auto retry_after = std::chrono::seconds(1);
// Reads waiting on one connection at most; more go another way.
constexpr std::size_t max_waiting = 10000;

// RESP: *<n>\r\n then $<len>\r\n<arg>\r\n per argument.
template <typename Args>
void append_args(std::string& out, const Args& args) {
    append_resp_header(out, '*', args.size());
    for (const auto& a : args) append_resp_bulk(out, a);
}

void append_command(std::string& out, std::initializer_list<std::string_view> args) { append_args(out, args); }
void append_command(std::string& out, const std::vector<std::string>& args) { append_args(out, args); }

// One Redis connection of one io thread. Everything runs on that thread.
class connection : public std::enable_shared_from_this<connection> {
public:
    // The reply (null on failure) and, on failure, why.
    using reply_callback = std::function<void(const resp_reply* reply, const std::string& error)>;

    connection(net::io_context& ioc, const redis_config& rc)
        : ioc_(ioc), socket_(ioc), resolver_(ioc), timer_(ioc), rc_(rc) {}
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    net::io_context& io_context() const { return ioc_; }

    bool accepts() const {
        if (waiting_.size() >= max_waiting) return false;
        return state_ != state::failed || clock_type::now() - failed_at_ >= retry_after;
    }

    void send(std::initializer_list<std::string_view> args, reply_callback done) {
        if (state_ == state::failed || state_ == state::idle) connect();
        append_command(out_, args);
        push(std::move(done));
        if (!flush_posted_) {
            flush_posted_ = true;
            // After the handlers already queued: the reads of this turn of the loop go together.
            net::post(ioc_, [self = shared_from_this()] {
                self->flush_posted_ = false;
                self->flush();
            });
        }
    }

private:
    enum class state { idle, connecting, ready, failed };

    void push(reply_callback done) {
        waiting_.push_back(std::move(done));
        if (!timer_armed_) arm_timer();
    }

    void connect() {
        state_ = state::connecting;
        const auto gen = ++generation_;
        // AUTH and SELECT go first; a refusal fails the connection.
        const auto check = [this](const char* what) {
            return [this, what](const resp_reply* r, const std::string&) {
                if (!r) return;  // the connection failed: already told
                if (r->type == resp_reply::kind::error) fail(std::string("Redis refused ") + what + ": " + std::string(r->text));
            };
        };
        if (!rc_.password.empty()) {
            append_command(out_, auth_command(rc_));
            push(check("AUTH"));
        }
        if (rc_.db != 0) {
            const std::string db = std::to_string(rc_.db);
            append_command(out_, {"SELECT", db});
            push(check("SELECT"));
        }
        boost::system::error_code ec;
        const auto address = net::ip::make_address(rc_.host, ec);
        if (!ec) {
            socket_.async_connect(tcp::endpoint(address, static_cast<std::uint16_t>(rc_.port)),
                                  [self = shared_from_this(), gen](boost::system::error_code connect_ec) {
                                      self->connected(connect_ec, gen);
                                  });
            return;
        }
        // A host name: resolved off the io thread (asio's resolver thread), then each address tried.
        resolver_.async_resolve(
            rc_.host, std::to_string(rc_.port),
            [self = shared_from_this(), gen](boost::system::error_code resolve_ec, const tcp::resolver::results_type& results) {
                if (gen != self->generation_) return;
                if (resolve_ec || results.empty())
                    return self->fail("cannot resolve Redis host '" + self->rc_.host + "': " + resolve_ec.message());
                net::async_connect(self->socket_, results,
                                   [self, gen](boost::system::error_code connect_ec, const tcp::endpoint&) {
                                       self->connected(connect_ec, gen);
                                   });
            });
    }

    void connected(boost::system::error_code ec, std::uint64_t gen) {
        if (gen != generation_) return;
        if (ec) return fail("cannot connect to Redis at " + rc_.host + ":" + std::to_string(rc_.port) + ": " + ec.message());
        boost::system::error_code opt_ec;
        socket_.set_option(tcp::no_delay(true), opt_ec);
        state_ = state::ready;
        read_more();
        flush();
    }

    void flush() {
        if (state_ != state::ready || writing_ || out_.empty()) return;
        writing_ = true;
        sending_.swap(out_);
        out_.clear();
        const auto gen = generation_;
        net::async_write(socket_, net::buffer(sending_),
                         [self = shared_from_this(), gen](boost::system::error_code ec, std::size_t) {
                             if (gen != self->generation_) return;
                             self->writing_ = false;
                             self->sending_.clear();
                             if (ec) return self->fail("Redis: " + ec.message());
                             self->flush();
                         });
    }

    void read_more() {
        const auto gen = generation_;
        socket_.async_read_some(net::buffer(chunk_), [self = shared_from_this(), gen](boost::system::error_code ec,
                                                                                      std::size_t n) {
            if (gen != self->generation_) return;
            if (ec) return self->fail("Redis: " + ec.message());
            self->input_.append(self->chunk_, n);
            std::size_t used = 0;
            for (;;) {
                const long taken = parse_resp_reply(std::string_view(self->input_).substr(used), self->reply_);
                if (taken < 0) return self->fail("Redis: unreadable reply");
                if (taken == 0) break;
                used += static_cast<std::size_t>(taken);
                if (self->waiting_.empty()) return self->fail("Redis: a reply that nothing asked for");
                auto done = std::move(self->waiting_.front());
                self->waiting_.pop_front();
                self->progress_ = true;
                done(&self->reply_, {});
                if (gen != self->generation_) return;  // the callback's reply failed the connection
            }
            self->input_.erase(0, used);
            self->read_more();
        });
    }

    // No reply for a whole redis.timeout_ms while replies are owed fails the connection.
    void arm_timer() {
        timer_armed_ = true;
        progress_ = false;
        const auto armed = ++timer_generation_;
        timer_.expires_after(std::chrono::milliseconds(std::max(1, rc_.timeout_ms)));
        timer_.async_wait([self = shared_from_this(), armed](boost::system::error_code ec) {
            if (armed != self->timer_generation_) return;  // re-armed or cancelled since
            self->timer_armed_ = false;
            if (ec || self->waiting_.empty()) return;
            if (!self->progress_)
                return self->fail("Redis: no reply within " + std::to_string(self->rc_.timeout_ms) +
                                  " ms (redis.timeout_ms)");
            self->arm_timer();
        });
    }

    // Every read waiting is answered with the error; the next read after retry_after reconnects.
    void fail(const std::string& error) {
        ++generation_;
        state_ = state::failed;
        failed_at_ = clock_type::now();
        boost::system::error_code ignored;
        socket_.close(ignored);
        resolver_.cancel();
        ++timer_generation_;
        timer_armed_ = false;
        timer_.cancel();
        input_.clear();
        out_.clear();
        sending_.clear();
        writing_ = false;
        auto waiting = std::move(waiting_);
        waiting_.clear();
        for (auto& done : waiting) done(nullptr, error);
    }

    net::io_context& ioc_;
    tcp::socket socket_;
    tcp::resolver resolver_;
    net::steady_timer timer_;
    redis_config rc_;
    state state_ = state::idle;
    std::uint64_t generation_ = 0;  // handlers of an older connection ignore their completion
    clock_type::time_point failed_at_{};
    std::string out_;      // commands not written yet
    std::string sending_;  // commands being written
    bool writing_ = false;
    bool flush_posted_ = false;
    bool timer_armed_ = false;
    std::uint64_t timer_generation_ = 0;
    bool progress_ = false;  // a reply arrived since the timer was armed
    std::deque<reply_callback> waiting_;
    std::string input_;  // replies read, not yet complete or not yet handled
    resp_reply reply_;   // the reply being handed to its callback
    char chunk_[16384];
};

// The calling io thread's connection for a reader.
struct thread_connection {
    const redis_io_reader* owner = nullptr;
    std::shared_ptr<connection> conn;
};
thread_local thread_connection this_thread;

}  // namespace

redis_io_reader::redis_io_reader(const config& cfg) : cfg_(cfg) {
    for (const auto& set : cfg.feature_sets) columns_.push_back(latest_columns(set));
}

redis_io_reader::~redis_io_reader() = default;

bool redis_io_reader::read(std::uint32_t set_index, const std::string& key, callback done) {
    net::io_context* ioc = current_io_context();
    if (ioc == nullptr || !cfg_.redis) return false;
    if (this_thread.owner != this || !this_thread.conn || &this_thread.conn->io_context() != ioc) {
        this_thread.owner = this;
        this_thread.conn = std::make_shared<connection>(*ioc, *cfg_.redis);
    }
    connection& conn = *this_thread.conn;
    if (!conn.accepts()) return false;
    const std::string redis_name = redis_key(cfg_.redis->key_prefix, cfg_.feature_sets[set_index].storage_name(), key);
    conn.send({"HGETALL", redis_name},
              [columns = &columns_[set_index], key, done = std::move(done)](const resp_reply* r, const std::string& error) {
                  using R = result<std::optional<latest_entry>>;
                  if (r == nullptr) return done(R::failure(error));
                  if (r->type == resp_reply::kind::error) return done(R::failure("Redis: " + std::string(r->text)));
                  if (r->type != resp_reply::kind::array) return done(std::optional<latest_entry>{});
                  done(decode_latest_fields(*columns, key, r->elements));
              });
    return true;
}

}  // namespace sluice
