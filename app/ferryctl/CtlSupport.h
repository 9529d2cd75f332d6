#pragma once

#include "app/ferryctl/CtlCommands.h"
#include "core/ClientStore.h"

#include <QJsonObject>

#include <functional>
#include <memory>

namespace ferry {
class SyncEngine;
}

// What the commands of ferryctl share: output, opening the profile, running the sync engine.
namespace ferry::ctl {

void printOut(const QString& text);
void printError(const QString& text);
void printJson(const QJsonObject& object);
void printMessage(const StoredMessage& message, bool json);

/// Opens the profile's store. A damaged database is recovered on the spot (moved aside, the
/// account and queued messages carried over) and the user told so; any other failure is told
/// and returns null with `exitCode` set.
std::unique_ptr<ClientStore> openStore(const CtlOptions& options, int* exitCode = nullptr);

/// Tells the user why a store operation failed and returns the exit code. A store found damaged
/// in the middle of a command is closed, set aside and recovered as openStore() does, so that the
/// next command starts on a sound database.
int failOnStore(const CtlOptions& options, std::unique_ptr<ClientStore>& store, const Error& error,
    const QString& what = {});

/// Reads the password from FERRY_PASSWORD, or else one line of standard input (without echo
/// when it is a terminal). Never from the command line, where other users could read it.
QByteArray readPassword();

/// TARGET is another user's name (the direct conversation with them) or a conversation id.
QString resolveConversation(const ClientStore& store, const QString& target);

/// A sync engine on `store`, pointed at the servers of `options`, which records its state in
/// the store for `ferryctl status` to read.
std::unique_ptr<SyncEngine> makeEngine(ClientStore* store, const CtlOptions& options);

/// Starts the engine with `start` and runs the event loop until the command is finished (the
/// engine idle, when `endWhenIdle`; or QCoreApplication::exit from a handler), the timeout
/// passes, SIGINT or SIGTERM arrives, or the engine stops with an error. Returns the exit code.
int runEngine(SyncEngine& engine, const CtlOptions& options, bool endWhenIdle,
    const std::function<void()>& start);

/// Runs the engine until a request made by `issue` is answered and the engine is idle, then
/// calls `done` with the request's error (empty on success). Returns the exit code.
int runRequest(SyncEngine& engine, const CtlOptions& options,
    const std::function<quint64()>& issue, const std::function<int(const QString&)>& done);

} // namespace ferry::ctl
