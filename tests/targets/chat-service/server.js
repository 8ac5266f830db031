'use strict';
/*
 * Demo chat service stressed by J4's `chat` scenario, and a small
 * multi-protocol test target for the HTTP, GraphQL and gRPC plugins.
 *
 * One process serves three protocols from in-memory state:
 *   - REST over node:http (accounts, tokens, health, test endpoints such as
 *     /delay, /status, /redirect, /echo, /connections);
 *   - GraphQL over HTTP POST at /graphql (graphql-http);
 *   - gRPC service j4chat.Chat from proto/chat.proto (@grpc/grpc-js).
 * With --admin, /admin/* exposes counters and fault-injection hooks (reset
 * open streams, refuse new sessions for a while). Nothing is durable: a
 * restart forgets every account, token and chat.
 *
 * Runs on Node 18 or newer. Binds 127.0.0.1 unless --host says otherwise,
 * prints "chat-service ready http=P grpc=Q" once both servers listen, and
 * exits with status 0 on SIGTERM or SIGINT.
 */

const crypto = require('node:crypto');
const http = require('node:http');
const path = require('node:path');
const { performance } = require('node:perf_hooks');

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { buildSchema } = require('graphql');
const { createHandler } = require('graphql-http/lib/use/http');

const PROTO_PATH = path.join(__dirname, '..', '..', '..', 'proto',
                             'chat.proto');
const MAX_DELAY_MS = 130000;
const MAX_PAUSE_MS = 600000;
const MAX_BODY_BYTES = 1 << 20;
/* A session whose client reads slower than this many queued events ends. */
const MAX_QUEUED_EVENTS = 10000;
const USERNAME_RE = /^[A-Za-z0-9_.@-]{1,64}$/;

const USAGE = 'usage: node server.js --http-port P --grpc-port Q ' +
    '[--host 127.0.0.1] [--idle-timeout 30s] [--admin]\n' +
    '  ports may be 0 (pick a free one; the ready line tells which)\n' +
    '  --idle-timeout takes seconds, or a number ending in ms or s\n';

/* ------------------------------------------------------------------ */
/* Command line                                                        */
/* ------------------------------------------------------------------ */

function die(msg)
{
    process.stderr.write(`chat-service: ${msg}\n`);
    process.exit(2);
}

function parsePort(name, value)
{
    if (value === undefined || !/^\d+$/.test(value) || Number(value) > 65535)
        die(`invalid port for ${name}: '${value}'`);
    return Number(value);
}

/* "30", "30s", "1.5s" and "500ms" are all accepted; returns ms. */
function parseDuration(name, value)
{
    const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(value || '');
    if (!m)
        die(`invalid duration for ${name}: '${value}'`);
    const ms = m[2] === 'ms' ? Number(m[1]) : Number(m[1]) * 1000;
    if (ms <= 0)
        die(`invalid duration for ${name}: '${value}'`);
    return ms;
}

function parseArgs(argv)
{
    const opts = { host: '127.0.0.1', idleMs: 30000, admin: false,
                   httpPort: null, grpcPort: null };
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        let [key, val] = arg.includes('=') ? arg.split(/=(.*)/s, 2)
                                            : [arg, undefined];
        const takeValue = () => (val !== undefined ? val : argv[++i]);
        switch (key) {
        case '--http-port': opts.httpPort = parsePort(key, takeValue()); break;
        case '--grpc-port': opts.grpcPort = parsePort(key, takeValue()); break;
        case '--host': opts.host = takeValue(); break;
        case '--idle-timeout':
            opts.idleMs = parseDuration(key, takeValue());
            break;
        case '--admin': opts.admin = true; break;
        case '-h':
        case '--help':
            process.stdout.write(USAGE);
            process.exit(0);
            break;
        default:
            die(`unknown option '${arg}'\n${USAGE}`);
        }
    }
    if (opts.httpPort === null || opts.grpcPort === null)
        die(`--http-port and --grpc-port are required\n${USAGE}`);
    if (!opts.host)
        die('--host needs a value');
    return opts;
}

/* ------------------------------------------------------------------ */
/* State and counters                                                  */
/* ------------------------------------------------------------------ */

const accounts = new Map();     /* username -> account */
const tokens = new Map();       /* token -> { username, lastActive } */
const chats = new Map();        /* chat id -> { id, members: Set, sessions } */
const sessions = new Set();     /* every open Session call */
let nextMessageId = 1;
let pausedUntil = 0;

const conns = { total: 0, open: 0, nextId: 1 };

function freshStats()
{
    return {
        max_open_streams: sessions.size,
        streams_opened_total: 0,
        streams_reset_total: 0,
        streams_idle_closed_total: 0,
        streams_refused_total: 0,
        sends_total: 0,
        events_delivered_total: 0,
        pings_total: 0,
        http_requests_total: 0,
        graphql_requests_total: 0,
        graphql_errors_total: 0,
        traced_requests_total: 0,
        last_baggage: null,
    };
}
let stats = freshStats();

function nowUs()
{
    return BigInt(Math.round((performance.timeOrigin + performance.now()) *
                             1000));
}

function randomHex(bytes)
{
    return crypto.randomBytes(bytes).toString('hex');
}

/* W3C trace context: version-traceid-parentid-flags, lowercase hex. */
function validTraceparent(value)
{
    if (typeof value !== 'string')
        return false;
    const m = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/
        .exec(value.trim());
    if (!m || m[1] === 'ff')
        return false;
    if (m[1] === '00' && m[5] !== undefined)
        return false;
    return !/^0+$/.test(m[2]) && !/^0+$/.test(m[3]);
}

/* Counts trace headers; values may be strings, arrays or undefined. */
function noteTraceContext(traceparent, baggage)
{
    const first = (v) => (Array.isArray(v) ? v[0] : v);
    if (validTraceparent(first(traceparent)))
        stats.traced_requests_total++;
    const b = Array.isArray(baggage) ? baggage.join(',') : baggage;
    if (typeof b === 'string' && b.length > 0)
        stats.last_baggage = b;
}

function createAccount(username)
{
    const account = {
        id: randomHex(8),
        username,
        password: randomHex(12),
        chatId: 'c-' + randomHex(8),
    };
    accounts.set(username, account);
    chats.set(account.chatId, {
        id: account.chatId,
        members: new Set([username]),
        sessions: new Set(),
    });
    return account;
}

function generateUsername()
{
    let name;
    do {
        name = 'user-' + randomHex(6);
    } while (accounts.has(name));
    return name;
}

function issueToken(username)
{
    const token = randomHex(24);
    tokens.set(token, { username, lastActive: Date.now() });
    return token;
}

/* Returns the account the token belongs to, or null. */
function accountOf(token)
{
    const t = typeof token === 'string' ? tokens.get(token) : undefined;
    return t ? accounts.get(t.username) || null : null;
}

/* ------------------------------------------------------------------ */
/* gRPC                                                                */
/* ------------------------------------------------------------------ */

function rpcError(code, details)
{
    const err = new Error(details);
    err.code = code;
    err.details = details;
    return err;
}

function noteRpcMetadata(call)
{
    noteTraceContext(call.metadata.get('traceparent')[0],
                     call.metadata.get('baggage').map(String));
}

function closeSession(call, code, details)
{
    if (!sessions.delete(call))
        return false;
    const chat = chats.get(call.j4.chatId);
    if (chat)
        chat.sessions.delete(call);
    if (code !== undefined && !call.cancelled)
        call.emit('error', rpcError(code, details));
    return true;
}

function handleSession(call)
{
    noteRpcMetadata(call);
    const { token, chat_id: chatId } = call.request;
    if (Date.now() < pausedUntil) {
        stats.streams_refused_total++;
        call.emit('error', rpcError(grpc.status.UNAVAILABLE,
                                    'server paused'));
        return;
    }
    const account = accountOf(token);
    if (!account) {
        call.emit('error', rpcError(grpc.status.UNAUTHENTICATED,
                                    'invalid token'));
        return;
    }
    const chat = chats.get(chatId);
    if (!chat || !chat.members.has(account.username)) {
        call.emit('error', rpcError(grpc.status.PERMISSION_DENIED,
                                    `not a member of chat '${chatId}'`));
        return;
    }
    tokens.get(token).lastActive = Date.now();
    call.j4 = { token, chatId };
    sessions.add(call);
    chat.sessions.add(call);
    stats.streams_opened_total++;
    if (sessions.size > stats.max_open_streams)
        stats.max_open_streams = sessions.size;
    call.on('cancelled', () => closeSession(call));
    call.on('close', () => closeSession(call));
    call.on('error', () => closeSession(call));
}

function handleSend(call, callback)
{
    noteRpcMetadata(call);
    const { token, chat_id: chatId, text, sent_at_us: sentAtUs } =
        call.request;
    const account = accountOf(token);
    if (!account)
        return callback(rpcError(grpc.status.UNAUTHENTICATED,
                                 'invalid token'));
    const chat = chats.get(chatId);
    if (!chat || !chat.members.has(account.username))
        return callback(rpcError(grpc.status.PERMISSION_DENIED,
                                 `not a member of chat '${chatId}'`));
    stats.sends_total++;
    const event = {
        message_id: 'm-' + nextMessageId++,
        chat_id: chatId,
        sender: account.username,
        text,
        sent_at_us: sentAtUs,
    };
    for (const s of [...chat.sessions]) {
        if (s.writableLength >= MAX_QUEUED_EVENTS) {
            closeSession(s, grpc.status.RESOURCE_EXHAUSTED,
                         'client too slow');
            continue;
        }
        s.write(event);
        stats.events_delivered_total++;
    }
    callback(null, { message_id: event.message_id });
}

function handlePing(call, callback)
{
    noteRpcMetadata(call);
    const t = tokens.get(call.request.token);
    if (!t || !accounts.has(t.username))
        return callback(rpcError(grpc.status.UNAUTHENTICATED,
                                 'invalid token'));
    stats.pings_total++;
    t.lastActive = Date.now();
    callback(null, { server_time_us: nowUs().toString() });
}

/* Ends sessions whose token has had no Ping for longer than idleMs. */
function sweepIdle(idleMs)
{
    const now = Date.now();
    for (const call of [...sessions]) {
        const t = tokens.get(call.j4.token);
        if (!t || now - t.lastActive > idleMs) {
            if (closeSession(call, grpc.status.UNAVAILABLE,
                             'session idle for too long'))
                stats.streams_idle_closed_total++;
        }
    }
}

function startGrpc(opts)
{
    const def = protoLoader.loadSync(PROTO_PATH, {
        keepCase: true, longs: String, enums: String, defaults: true,
        oneofs: true,
    });
    const proto = grpc.loadPackageDefinition(def);
    const server = new grpc.Server();
    server.addService(proto.j4chat.Chat.service, {
        Session: handleSession,
        Send: handleSend,
        Ping: handlePing,
    });
    const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
    return new Promise((resolve, reject) => {
        server.bindAsync(`${host}:${opts.grpcPort}`,
                         grpc.ServerCredentials.createInsecure(),
                         (err, port) => {
            if (err)
                return reject(err);
            resolve({ server, port });
        });
    });
}

/* ------------------------------------------------------------------ */
/* GraphQL                                                             */
/* ------------------------------------------------------------------ */

const schema = buildSchema(`
    type Query {
        me: User
        chat(id: ID!): Chat
        "Always fails: for testing how clients count GraphQL errors."
        boom: String
    }
    type User { id: ID!, username: String!, chatId: ID! }
    type Chat { id: ID!, members: Int! }
`);

const rootValue = {
    me: (_args, ctx) => {
        if (!ctx.account)
            throw new Error('unauthenticated: missing or invalid token');
        const a = ctx.account;
        return { id: a.id, username: a.username, chatId: a.chatId };
    },
    chat: ({ id }) => {
        const chat = chats.get(id);
        return chat ? { id: chat.id, members: chat.members.size } : null;
    },
    boom: () => {
        throw new Error('boom');
    },
};

function bearerToken(headers)
{
    const m = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization || '');
    return m ? m[1] : null;
}

const graphqlHandler = createHandler({
    schema,
    rootValue,
    context: (req) => ({ account: accountOf(bearerToken(req.headers)) }),
    formatError: (err) => {
        stats.graphql_errors_total++;
        return err;
    },
});

/* ------------------------------------------------------------------ */
/* HTTP                                                                */
/* ------------------------------------------------------------------ */

function send(res, status, body, headers = {})
{
    const isText = typeof body === 'string';
    const payload = status === 204 || status === 304 ? ''
        : (isText ? body : JSON.stringify(body));
    res.writeHead(status, {
        'Content-Type': isText ? 'text/plain; charset=utf-8'
                               : 'application/json',
        'Content-Length': Buffer.byteLength(payload),
        ...headers,
    });
    res.end(payload);
}

/* Reads the request body as text; rejects with status 413 when too big. */
function readBody(req)
{
    return new Promise((resolve, reject) => {
        const chunks = [];
        let size = 0;
        req.on('data', (c) => {
            size += c.length;
            if (size > MAX_BODY_BYTES) {
                const err = new Error('request body too large');
                err.status = 413;
                reject(err);
                req.destroy();
                return;
            }
            chunks.push(c);
        });
        req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        req.on('error', reject);
    });
}

async function readJson(req)
{
    const text = await readBody(req);
    if (text.trim() === '')
        return {};
    try {
        const value = JSON.parse(text);
        if (value && typeof value === 'object' && !Array.isArray(value))
            return value;
    } catch (e) {
        /* fall through */
    }
    const err = new Error('body is not a JSON object');
    err.status = 400;
    throw err;
}

async function postAccounts(req, res)
{
    const body = await readJson(req);
    let username = body.username;
    if (username === undefined || username === null || username === '')
        username = generateUsername();
    if (typeof username !== 'string' || !USERNAME_RE.test(username))
        return send(res, 400, { error: 'invalid username' });
    if (accounts.has(username))
        return send(res, 409, { error: `username '${username}' taken` });
    const a = createAccount(username);
    send(res, 201, { id: a.id, username: a.username, password: a.password,
                     chat_id: a.chatId });
}

async function postTokens(req, res)
{
    const { username, password } = await readJson(req);
    if (typeof username !== 'string' || typeof password !== 'string')
        return send(res, 400, { error: 'username and password required' });
    const a = accounts.get(username);
    if (!a || a.password !== password)
        return send(res, 401, { error: 'invalid username or password' });
    send(res, 201, { token: issueToken(username) });
}

function getDelay(req, res, url)
{
    const ms = Number(url.searchParams.get('ms') || '0');
    if (!Number.isFinite(ms) || ms < 0)
        return send(res, 400, { error: 'ms must be a non-negative number' });
    const timer = setTimeout(() => send(res, 200, 'ok'),
                             Math.min(ms, MAX_DELAY_MS));
    res.on('close', () => clearTimeout(timer));
}

function getStatus(req, res, code)
{
    const status = Number(code);
    if (status < 200 || status > 599)
        return send(res, 400, { error: 'status must be 200-599' });
    send(res, status, { status });
}

const REDIRECT_CODES = new Set([301, 302, 303, 307, 308]);

/*
 * /redirect/CODE?to=PATH[&hops=N]: answers CODE with Location PATH (default
 * /echo); with hops=N, first N-1 more redirects of the same kind. Nested
 * chains also work by URL-encoding a /redirect/... path into `to`. Only
 * local paths are accepted so that nothing is ever sent elsewhere.
 * /redirect/loop[?code=CODE] redirects to itself forever.
 */
function handleRedirect(req, res, url, what)
{
    if (what === 'loop') {
        const code = Number(url.searchParams.get('code') || '302');
        if (!REDIRECT_CODES.has(code))
            return send(res, 400, { error: 'bad redirect code' });
        return send(res, code, { location: url.pathname + url.search },
                    { Location: url.pathname + url.search });
    }
    const code = Number(what);
    if (!REDIRECT_CODES.has(code))
        return send(res, 404, { error: `no redirect code '${what}'` });
    const to = url.searchParams.get('to') || '/echo';
    if (!to.startsWith('/') || to.startsWith('//') || to.includes('\\'))
        return send(res, 400, { error: 'to must be a local path' });
    const hops = Number(url.searchParams.get('hops') || '1');
    if (!Number.isInteger(hops) || hops < 1 || hops > 1000)
        return send(res, 400, { error: 'hops must be 1-1000' });
    let location = to;
    if (hops > 1)
        location = `/redirect/${code}?hops=${hops - 1}&to=` +
            encodeURIComponent(to);
    send(res, code, { location }, { Location: location });
}

async function handleEcho(req, res, url)
{
    const body = await readBody(req);
    send(res, 200, { method: req.method, url: req.url, path: url.pathname,
                     body, headers: req.headers,
                     connection_id: req.socket.j4ConnId });
}

function adminStats()
{
    return {
        accounts: accounts.size,
        tokens: tokens.size,
        chats: chats.size,
        open_streams: sessions.size,
        ...stats,
        paused_ms_left: Math.max(0, pausedUntil - Date.now()),
        connections_total: conns.total,
        connections_open: conns.open,
    };
}

function resetStreams(count)
{
    let n = 0;
    for (const call of [...sessions]) {
        if (n >= count)
            break;
        if (closeSession(call, grpc.status.UNAVAILABLE, 'stream reset by ' +
                         'admin'))
            n++;
    }
    stats.streams_reset_total += n;
    return n;
}

async function handleAdmin(req, res, what)
{
    if (what === 'stats' && req.method === 'GET')
        return send(res, 200, adminStats());
    if (req.method !== 'POST')
        return send(res, 405, { error: 'method not allowed' });
    const body = await readJson(req);
    switch (what) {
    case 'reset-streams': {
        const count = body.count === undefined ? Infinity : Number(body.count);
        if (!(count >= 0))
            return send(res, 400, { error: 'count must be >= 0' });
        return send(res, 200, { reset: resetStreams(count) });
    }
    case 'pause': {
        const ms = Number(body.ms);
        if (!Number.isFinite(ms) || ms < 0 || ms > MAX_PAUSE_MS)
            return send(res, 400,
                        { error: `ms must be 0-${MAX_PAUSE_MS}` });
        pausedUntil = Date.now() + ms;
        return send(res, 200, { paused_ms: ms });
    }
    case 'reset-stats':
        stats = freshStats();
        return send(res, 200, { reset: true });
    default:
        return send(res, 404, { error: `no admin hook '${what}'` });
    }
}

/* Routes one request; returns a promise for the async handlers. */
function route(req, res, url, opts)
{
    const p = url.pathname;
    const m = req.method;
    let parts;
    if (p === '/graphql') {
        stats.graphql_requests_total++;
        return graphqlHandler(req, res);
    }
    if (p === '/healthz' && (m === 'GET' || m === 'HEAD'))
        return send(res, 200, { status: 'ok' });
    if (p === '/accounts' && m === 'POST')
        return postAccounts(req, res);
    if (p === '/tokens' && m === 'POST')
        return postTokens(req, res);
    if (p === '/delay' && m === 'GET')
        return getDelay(req, res, url);
    if ((parts = /^\/status\/(\d{3})$/.exec(p)))
        return getStatus(req, res, parts[1]);
    if ((parts = /^\/redirect\/([a-z0-9]+)$/.exec(p)))
        return handleRedirect(req, res, url, parts[1]);
    if (p === '/echo')
        return handleEcho(req, res, url);
    if (p === '/connections' && m === 'GET')
        return send(res, 200, { total: conns.total, open: conns.open,
                                connection_id: req.socket.j4ConnId });
    if (opts.admin && (parts = /^\/admin\/([a-z-]+)$/.exec(p)))
        return handleAdmin(req, res, parts[1]);
    if (['/accounts', '/tokens', '/delay', '/connections',
         '/healthz'].includes(p))
        return send(res, 405, { error: 'method not allowed' });
    send(res, 404, { error: `no route for '${p}'` });
}

function onRequest(req, res, opts)
{
    let url;
    try {
        url = new URL(req.url, 'http://localhost');
    } catch (e) {
        return send(res, 400, { error: 'bad request target' });
    }
    if (!url.pathname.startsWith('/admin/')) {
        stats.http_requests_total++;
        noteTraceContext(req.headers.traceparent, req.headers.baggage);
    }
    Promise.resolve()
        .then(() => route(req, res, url, opts))
        .catch((err) => {
            if (res.headersSent) {
                res.destroy();
                return;
            }
            const status = err.status || 500;
            if (status === 500)
                process.stderr.write(`chat-service: ${err.stack}\n`);
            send(res, status, { error: err.message },
                 status === 413 ? { Connection: 'close' } : {});
        });
}

function startHttp(opts)
{
    const server = http.createServer((req, res) => onRequest(req, res, opts));
    server.keepAliveTimeout = 30000;
    server.headersTimeout = 35000;
    server.requestTimeout = MAX_DELAY_MS + 30000;
    server.on('connection', (socket) => {
        socket.j4ConnId = conns.nextId++;
        conns.total++;
        conns.open++;
        socket.on('close', () => conns.open--);
    });
    return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.httpPort, opts.host, () => {
            server.removeListener('error', reject);
            resolve({ server, port: server.address().port });
        });
    });
}

/* ------------------------------------------------------------------ */
/* Main                                                                */
/* ------------------------------------------------------------------ */

async function main()
{
    const opts = parseArgs(process.argv.slice(2));
    let h, g;
    try {
        h = await startHttp(opts);
        g = await startGrpc(opts);
    } catch (err) {
        die(`cannot listen: ${err.message}`);
    }
    const sweepMs = Math.max(50, Math.min(1000, opts.idleMs / 4));
    const sweeper = setInterval(() => sweepIdle(opts.idleMs), sweepMs);

    let stopping = false;
    const stop = () => {
        if (stopping)
            return;
        stopping = true;
        clearInterval(sweeper);
        for (const call of [...sessions])
            closeSession(call, grpc.status.UNAVAILABLE, 'server stopping');
        h.server.close();
        if (h.server.closeAllConnections)
            h.server.closeAllConnections();
        g.server.tryShutdown(() => process.exit(0));
        setTimeout(() => {
            g.server.forceShutdown();
            process.exit(0);
        }, 500).unref();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.stdout.write(`chat-service ready http=${h.port} grpc=${g.port}\n`);
}

main();
