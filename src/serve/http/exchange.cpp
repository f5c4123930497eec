#include "exchange.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

#include "response.hpp"

namespace sluice::serve {

namespace {

// An unlinked temporary file in $TMPDIR (or /tmp): gone when closed, whatever happens.
int open_spool() {
    const char* dir = std::getenv("TMPDIR");
    std::string path = std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/sluice-body-XXXXXX";
    const int fd = ::mkstemp(path.data());
    if (fd >= 0) ::unlink(path.c_str());
    return fd;
}

std::string hex(std::size_t n) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    do {
        out.insert(out.begin(), digits[n & 15]);
        n >>= 4;
    } while (n != 0);
    return out;
}

}  // namespace

stream_exchange::stream_exchange(std::string request_id, unsigned version, bool body_streams, std::function<void()> wake)
    : request_id_(std::move(request_id)), version_(version), wake_(std::move(wake)), body_streams_(body_streams),
      chunked_(version != 10) {
    if (body_streams_) {
        spool_ = open_spool();
        if (spool_ < 0) {
            body_error_ = std::string("cannot spool the request body: ") + std::strerror(errno);
            body_error_kind_ = error_kind::retryable;
        }
    } else {
        body_done_ = true;
    }
}

stream_exchange::~stream_exchange() {
    if (spool_ >= 0) ::close(spool_);
}

result<std::size_t> stream_exchange::read_body(char* buf, std::size_t cap) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return read_ < spooled_ || body_done_ || !body_error_.empty() || gone_; });
    if (read_ < spooled_) {
        const std::uint64_t at = read_;
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(cap, spooled_ - read_));
        lock.unlock();  // [read_, spooled_) is written and stays as it is
        const ssize_t got = ::pread(spool_, buf, n, static_cast<off_t>(at));
        if (got <= 0) return result<std::size_t>::failure("reading the spooled request body failed");
        lock.lock();
        read_ += static_cast<std::uint64_t>(got);
        return static_cast<std::size_t>(got);
    }
    if (!body_error_.empty()) return result<std::size_t>::failure(body_error_, body_error_kind_);
    if (gone_) return result<std::size_t>::failure("the client has gone");
    return std::size_t{0};
}

void stream_exchange::queue(std::string bytes, bool last, std::unique_lock<std::mutex>& lock) {
    unsent_ += bytes.size();
    queued_ += bytes;
    if (last) last_ = true;
    const bool wake = !wake_pending_ && wake_;
    wake_pending_ = true;
    auto hook = wake_;
    lock.unlock();
    if (wake) hook();
}

void stream_exchange::refuse(unsigned status, std::string code, std::string message) {
    std::unique_lock lock(mutex_);
    if (head_queued_ || gone_) return;
    head_queued_ = true;
    status_ = status;
    const response err = error_response(static_cast<http::status>(status), code, message);
    std::string out = version_ == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    out += std::to_string(status) + " " + std::string(err.reason()) + "\r\n";
    out += "Content-Type: application/json\r\nX-Request-Id: " + request_id_ +
           "\r\nServer: sluice\r\nConnection: close\r\nContent-Length: " + std::to_string(err.body().size()) + "\r\n";
    if (status == 429) out += "Retry-After: 5\r\n";
    out += "\r\n";
    out += err.body();
    queue(std::move(out), true, lock);
}

void stream_exchange::begin(std::string content_type, std::vector<std::pair<std::string, std::string>> headers,
                            std::vector<std::string> trailers) {
    std::unique_lock lock(mutex_);
    if (head_queued_ || gone_) return;
    head_queued_ = true;
    status_ = 200;
    std::string out = version_ == 10 ? "HTTP/1.0 200 OK\r\n" : "HTTP/1.1 200 OK\r\n";
    out += "Content-Type: " + content_type + "\r\n";
    for (const auto& [name, v] : headers) out += name + ": " + v + "\r\n";
    out += "X-Request-Id: " + request_id_ + "\r\nServer: sluice\r\nConnection: close\r\n";
    if (chunked_) {
        out += "Transfer-Encoding: chunked\r\n";
        if (!trailers.empty()) {
            out += "Trailer: ";
            for (std::size_t i = 0; i < trailers.size(); ++i) out += (i > 0 ? ", " : "") + trailers[i];
            out += "\r\n";
        }
    }
    out += "\r\n";
    queue(std::move(out), false, lock);
}

bool stream_exchange::write(std::string_view bytes) {
    if (bytes.empty()) return true;
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return unsent_ <= max_unsent || gone_; });
    if (gone_ || broken_ || last_) return false;
    std::string out;
    out.reserve(bytes.size() + 16);
    if (chunked_) out += hex(bytes.size()) + "\r\n";
    out += bytes;
    if (chunked_) out += "\r\n";
    queue(std::move(out), false, lock);
    return true;
}

void stream_exchange::finish(std::vector<std::pair<std::string, std::string>> trailers) {
    std::unique_lock lock(mutex_);
    if (gone_ || broken_ || last_) return;
    std::string out;
    if (chunked_) {
        out = "0\r\n";
        for (const auto& [name, v] : trailers) out += name + ": " + v + "\r\n";
        out += "\r\n";
    }
    queue(std::move(out), true, lock);
}

void stream_exchange::abort(const std::string&) {
    std::unique_lock lock(mutex_);
    if (gone_ || last_) return;
    broken_ = true;
    queue(std::string(), true, lock);
}

status stream_exchange::body_bytes(std::string_view bytes) {
    if (spool_ < 0) return status::failure(body_error_);
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::pwrite(spool_, bytes.data() + done, bytes.size() - done, static_cast<off_t>(spooled_ + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            body_failed(std::string("cannot spool the request body: ") + std::strerror(errno), error_kind::retryable);
            return status::failure("spool");
        }
        done += static_cast<std::size_t>(n);
    }
    std::lock_guard lock(mutex_);
    spooled_ += bytes.size();
    cv_.notify_all();
    return status::success();
}

void stream_exchange::body_end() {
    std::lock_guard lock(mutex_);
    body_done_ = true;
    cv_.notify_all();
}

void stream_exchange::body_failed(std::string message, error_kind kind) {
    std::lock_guard lock(mutex_);
    if (body_done_ || !body_error_.empty()) return;
    body_error_ = std::move(message);
    body_error_kind_ = kind;
    cv_.notify_all();
}

void stream_exchange::gone() {
    std::lock_guard lock(mutex_);
    gone_ = true;
    cv_.notify_all();
}

void stream_exchange::continue_first() {
    std::lock_guard lock(mutex_);
    if (anything_taken_ || head_queued_ || version_ == 10) return;
    queued_.insert(0, "HTTP/1.1 100 Continue\r\n\r\n");
    unsent_ += 25;
}

stream_exchange::pending stream_exchange::take() {
    std::lock_guard lock(mutex_);
    wake_pending_ = false;
    pending p;
    p.bytes = std::move(queued_);
    queued_.clear();
    p.last = last_;
    p.broken = broken_;
    if (!p.bytes.empty()) anything_taken_ = true;
    return p;
}

void stream_exchange::sent(std::size_t bytes) {
    std::lock_guard lock(mutex_);
    unsent_ -= std::min(unsent_, bytes);
    cv_.notify_all();
}

void stream_exchange::release() {
    std::function<void()> hook;
    {
        std::lock_guard lock(mutex_);
        hook.swap(wake_);
        gone_ = true;
        cv_.notify_all();
    }
}

unsigned stream_exchange::answer_status() const {
    std::lock_guard lock(mutex_);
    return status_;
}

}  // namespace sluice::serve
