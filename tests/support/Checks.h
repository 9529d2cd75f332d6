#pragma once

#include "core/Result.h"

#include <QByteArray>

namespace ferry::test {

/// The error of a Result as text for QVERIFY2, or nothing when it holds a value. QVERIFY2
/// evaluates its message even when the check passes, so the message must not touch error()
/// of a Result that succeeded.
template <typename T> QByteArray whyNot(const Result<T>& result)
{
    return result ? QByteArray() : (result.error().kind + u": " + result.error().message).toUtf8();
}

} // namespace ferry::test
