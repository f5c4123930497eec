#include "sluice/core/io_thread.hpp"

namespace sluice {

namespace {
thread_local boost::asio::io_context* this_thread_ioc = nullptr;
}  // namespace

boost::asio::io_context* current_io_context() { return this_thread_ioc; }

void set_current_io_context(boost::asio::io_context* ioc) { this_thread_ioc = ioc; }

}  // namespace sluice
