#include "connection_pool.hpp"

namespace sluice::pg {

connection_pool::connection_pool(std::size_t n, const std::string& dsn, const std::vector<std::string>& on_connect,
                                 store_health& health)
    : health_(health) {
    for (std::size_t i = 0; i < n; ++i) free_.push_back(std::make_unique<connection>(dsn, on_connect));
}

connection_pool::lease connection_pool::acquire() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return !free_.empty(); });
    auto c = std::move(free_.back());
    free_.pop_back();
    return lease(*this, std::move(c));
}

void connection_pool::give_back(std::unique_ptr<connection> c) {
    {
        std::lock_guard lock(mutex_);
        free_.push_back(std::move(c));
    }
    cv_.notify_one();
}

}  // namespace sluice::pg
