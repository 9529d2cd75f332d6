#pragma once

#include <QString>

#include <utility>
#include <variant>

namespace ferry {

/// An error that crosses a layer boundary: a short machine-readable kind and a sentence for people.
struct Error {
    QString kind;
    QString message;
};

/// Either a value or an Error. Ferry reports failures as values, never as exceptions, so that a
/// caller on the other side of a signal or a thread hop always sees what went wrong.
template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value)
        : m_state(std::move(value))
    {
    }
    Result(Error error)
        : m_state(std::move(error))
    {
    }

    bool ok() const { return std::holds_alternative<T>(m_state); }
    explicit operator bool() const { return ok(); }

    T& value() { return std::get<T>(m_state); }
    const T& value() const { return std::get<T>(m_state); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const Error& error() const { return std::get<Error>(m_state); }

private:
    std::variant<T, Error> m_state;
};

/// The value of a Result that has nothing to return but success.
struct Done {
};

} // namespace ferry
