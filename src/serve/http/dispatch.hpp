#pragma once
// Turns one parsed request into one response: target → route → API key check → handler.
// One instance per server, shared by every session; immutable once the io threads run.

#include "auth.hpp"
#include "router.hpp"

namespace sluice::serve {

class dispatcher {
public:
    dispatcher(router routes, api_key_auth auth) : router_(std::move(routes)), auth_(std::move(auth)) {}

    /// Calls respond exactly once, inline or later from another thread. Never throws:
    /// an exception from a handler becomes a 500.
    void dispatch(const request& req, const responder& respond) const;

    const api_key_auth& auth() const { return auth_; }

private:
    router router_;
    api_key_auth auth_;
};

}  // namespace sluice::serve
