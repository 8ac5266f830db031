'use strict';
/*
 * Self-test of the demo chat service: starts server.js on free loopback
 * ports (port 0, read back from the ready line), drives REST, GraphQL, gRPC
 * and the admin hooks the way J4's tests will, and exits 0 only if every
 * check passed. A second instance, started without --admin and with a short
 * idle timeout, checks the idle drop and that /admin is off by default.
 *
 * Bounded: every wait has a timeout and the whole run is killed after
 * 60 s. Servers are stopped on success, on failure and on signals.
 * Run: node tests/targets/chat-service/selftest.js   (after ensure-deps.sh)
 */

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const http = require('node:http');
const path = require('node:path');

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const SERVER = path.join(__dirname, 'server.js');
const PROTO = path.join(__dirname, '..', '..', '..', 'proto', 'chat.proto');
const HOST = '127.0.0.1';
const OVERALL_MS = 60000;
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

const children = new Set();
let checks = 0;

function sleep(ms)
{
    return new Promise((r) => setTimeout(r, ms));
}

function withTimeout(promise, ms, what)
{
    let timer;
    const t = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
    });
    return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

function ok(what)
{
    checks++;
    process.stdout.write(`ok ${checks} - ${what}\n`);
}

/* Starts server.js with args; resolves { child, http, grpc } when ready. */
function startServer(args)
{
    const child = spawn(process.execPath, [SERVER, '--http-port', '0',
                        '--grpc-port', '0', '--host', HOST, ...args],
                        { stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(child);
    child.on('exit', () => children.delete(child));
    const ready = new Promise((resolve, reject) => {
        let out = '';
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (d) => {
            out += d;
            const m = /chat-service ready http=(\d+) grpc=(\d+)\n/.exec(out);
            if (m)
                resolve({ child, http: Number(m[1]), grpc: Number(m[2]) });
        });
        child.on('exit', (code) => reject(new Error(
            `server exited early with status ${code}`)));
    });
    return withTimeout(ready, 10000, 'server ready line');
}

function stopServer(child)
{
    return withTimeout(new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null)
            return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill('SIGTERM');
    }), 5000, 'server exit after SIGTERM');
}

/* One HTTP request; resolves { status, headers, text, json }. */
function request(port, method, urlPath, opts = {})
{
    const body = opts.body === undefined ? null
        : (typeof opts.body === 'string' ? opts.body
                                         : JSON.stringify(opts.body));
    const headers = { ...(opts.headers || {}) };
    if (body !== null) {
        headers['Content-Type'] = headers['Content-Type'] ||
            'application/json';
        headers['Content-Length'] = Buffer.byteLength(body);
    }
    const p = new Promise((resolve, reject) => {
        const req = http.request({ host: HOST, port, method, path: urlPath,
                                   headers, agent: opts.agent || false },
                                 (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (d) => (text += d));
            res.on('end', () => {
                let json = null;
                try {
                    json = JSON.parse(text);
                } catch (e) {
                    /* not JSON */
                }
                resolve({ status: res.statusCode, headers: res.headers,
                          text, json });
            });
        });
        req.on('error', reject);
        req.end(body === null ? undefined : body);
    });
    return withTimeout(p, opts.timeout || 5000, `${method} ${urlPath}`);
}

function graphql(port, query, token, extraHeaders = {})
{
    const headers = { ...extraHeaders };
    if (token)
        headers.Authorization = `Bearer ${token}`;
    return request(port, 'POST', '/graphql', { body: { query }, headers });
}

function grpcClient(port)
{
    const def = protoLoader.loadSync(PROTO, { keepCase: true, longs: String,
                                              defaults: true });
    const proto = grpc.loadPackageDefinition(def);
    return new proto.j4chat.Chat(`${HOST}:${port}`,
                                 grpc.credentials.createInsecure());
}

function unary(client, method, req, md = new grpc.Metadata())
{
    return withTimeout(new Promise((resolve, reject) => {
        client[method](req, md, { deadline: Date.now() + 5000 },
                       (err, reply) => (err ? reject(err) : resolve(reply)));
    }), 6000, `rpc ${method}`);
}

/*
 * Opens a Session; returns { call, events, ended } where `ended` resolves
 * with the final status code and nextEvent() waits for one event.
 */
function openSession(client, token, chatId)
{
    const call = client.Session({ token, chat_id: chatId });
    const events = [];
    const waiters = [];
    call.on('data', (ev) => {
        events.push(ev);
        while (waiters.length)
            waiters.shift()();
    });
    const ended = new Promise((resolve) => {
        call.on('error', (err) => resolve(err.code));
        call.on('status', (st) => resolve(st.code));
    });
    const nextEvent = (ms) => withTimeout(new Promise((resolve) => {
        const take = () => (events.length ? resolve(events.shift())
                                          : waiters.push(take));
        take();
    }), ms, 'session event');
    return { call, ended, nextEvent };
}

async function waitFor(what, fn, ms = 3000)
{
    const until = Date.now() + ms;
    for (;;) {
        if (await fn())
            return;
        if (Date.now() > until)
            throw new Error(`timed out waiting for ${what}`);
        await sleep(25);
    }
}

async function stats(port)
{
    const r = await request(port, 'GET', '/admin/stats');
    assert.equal(r.status, 200);
    return r.json;
}

async function testRest(port)
{
    const h = await request(port, 'GET', '/healthz');
    assert.equal(h.status, 200);
    ok('GET /healthz is 200');

    const a = await request(port, 'POST', '/accounts',
                            { body: { username: 'alice' } });
    assert.equal(a.status, 201);
    assert.equal(a.json.username, 'alice');
    assert.ok(a.json.id && a.json.password);
    const dup = await request(port, 'POST', '/accounts',
                              { body: { username: 'alice' } });
    assert.equal(dup.status, 409);
    const anon = await request(port, 'POST', '/accounts', { body: {} });
    assert.equal(anon.status, 201);
    assert.match(anon.json.username, /^user-/);
    const bad = await request(port, 'POST', '/accounts', { body: '{' });
    assert.equal(bad.status, 400);
    ok('POST /accounts: 201, duplicate 409, generated name, bad JSON 400');

    const wrong = await request(port, 'POST', '/tokens',
                                { body: { username: 'alice',
                                          password: 'nope' } });
    assert.equal(wrong.status, 401);
    const t = await request(port, 'POST', '/tokens',
                            { body: { username: 'alice',
                                      password: a.json.password } });
    assert.equal(t.status, 201);
    assert.ok(t.json.token);
    const t2 = await request(port, 'POST', '/tokens',
                             { body: { username: anon.json.username,
                                       password: anon.json.password } });
    ok('POST /tokens: bad password 401, good 201');
    return { alice: { ...a.json, token: t.json.token },
             other: { ...anon.json, token: t2.json.token } };
}

async function testGraphql(port, users)
{
    const me = await graphql(port, '{ me { id username chatId } }',
                             users.alice.token);
    assert.equal(me.status, 200);
    assert.equal(me.json.errors, undefined);
    assert.equal(me.json.data.me.username, 'alice');
    assert.equal(me.json.data.me.id, users.alice.id);
    users.alice.chatId = me.json.data.me.chatId;
    const other = await graphql(port, '{ me { chatId } }', users.other.token);
    users.other.chatId = other.json.data.me.chatId;
    assert.notEqual(users.alice.chatId, users.other.chatId);
    ok('GraphQL me { chatId } with a bearer token');

    for (const token of [null, 'bogus']) {
        const r = await graphql(port, '{ me { chatId } }', token);
        assert.equal(r.status, 200);
        assert.ok(r.json.errors.length >= 1);
        assert.equal(r.json.data.me, null);
    }
    const boom = await graphql(port, '{ boom }');
    assert.equal(boom.status, 200);
    assert.equal(boom.json.errors[0].message, 'boom');
    const chat = await graphql(port,
        `{ chat(id: "${users.alice.chatId}") { id members } }`);
    assert.deepEqual(chat.json.data.chat, { id: users.alice.chatId,
                                            members: 1 });
    ok('GraphQL: missing/bad token and boom give errors; chat members');
}

async function testGrpc(port, httpPort, users)
{
    const client = grpcClient(port);
    const { alice, other } = users;
    try {
        const bad = openSession(client, 'bogus', alice.chatId);
        assert.equal(await withTimeout(bad.ended, 3000, 'bad session'),
                     grpc.status.UNAUTHENTICATED);
        const foreign = openSession(client, alice.token, other.chatId);
        assert.equal(await withTimeout(foreign.ended, 3000, 'foreign'),
                     grpc.status.PERMISSION_DENIED);
        ok('Session: bad token UNAUTHENTICATED, foreign chat '
           + 'PERMISSION_DENIED');

        const s = openSession(client, alice.token, alice.chatId);
        await waitFor('open stream', async () =>
            (await stats(httpPort)).open_streams === 1);
        const md = new grpc.Metadata();
        md.set('traceparent', TRACEPARENT);
        md.set('baggage', 'j4.run=selftest');
        const sentAt = '1700000000123456';
        const reply = await unary(client, 'Send',
            { token: alice.token, chat_id: alice.chatId, text: 'hello',
              sent_at_us: sentAt }, md);
        assert.ok(reply.message_id);
        const ev = await s.nextEvent(3000);
        assert.equal(ev.sent_at_us, sentAt);
        assert.equal(ev.sender, 'alice');
        assert.equal(ev.text, 'hello');
        assert.equal(ev.chat_id, alice.chatId);
        assert.equal(ev.message_id, reply.message_id);
        ok('Send fans out an Event with sent_at_us echoed unchanged');

        await assert.rejects(unary(client, 'Send',
            { token: other.token, chat_id: alice.chatId, text: 'x',
              sent_at_us: '1' }), { code: grpc.status.PERMISSION_DENIED });
        const before = BigInt(Date.now()) * 1000n;
        const ping = await unary(client, 'Ping', { token: alice.token });
        const t = BigInt(ping.server_time_us);
        assert.ok(t >= before - 1000000n && t <= before + 5000000n);
        await assert.rejects(unary(client, 'Ping', { token: 'bogus' }),
                             { code: grpc.status.UNAUTHENTICATED });
        ok('Ping returns server_time_us; bad token rejected');

        const r = await request(httpPort, 'POST', '/admin/reset-streams',
                                { body: { count: 1 } });
        assert.deepEqual(r.json, { reset: 1 });
        assert.equal(await withTimeout(s.ended, 3000, 'reset stream'),
                     grpc.status.UNAVAILABLE);
        ok('admin reset-streams ends the stream with UNAVAILABLE');

        await request(httpPort, 'POST', '/admin/pause', { body: { ms: 400 } });
        const p = openSession(client, alice.token, alice.chatId);
        assert.equal(await withTimeout(p.ended, 3000, 'paused session'),
                     grpc.status.UNAVAILABLE);
        await sleep(500);
        const s2 = openSession(client, alice.token, alice.chatId);
        await waitFor('stream after pause', async () =>
            (await stats(httpPort)).open_streams === 1);
        s2.call.cancel();
        await waitFor('cancelled stream gone', async () =>
            (await stats(httpPort)).open_streams === 0);
        ok('admin pause refuses sessions, then they work again');
    } finally {
        client.close();
    }
}

async function testStats(port)
{
    await request(port, 'GET', '/healthz',
                  { headers: { traceparent: TRACEPARENT,
                               baggage: 'j4.run=http' } });
    await request(port, 'GET', '/healthz',
                  { headers: { traceparent: '00-bad' } });
    const s = await stats(port);
    assert.equal(s.accounts, 2);
    assert.equal(s.open_streams, 0);
    assert.equal(s.max_open_streams, 1);
    assert.equal(s.streams_opened_total, 2);
    assert.equal(s.sends_total, 1);
    assert.equal(s.pings_total, 1);
    assert.equal(s.graphql_requests_total, 6);
    assert.ok(s.http_requests_total >= 14, `http ${s.http_requests_total}`);
    assert.equal(s.traced_requests_total, 2);
    assert.equal(s.last_baggage, 'j4.run=http');
    ok('admin stats count accounts, streams, sends, pings, traces');

    const r = await request(port, 'POST', '/admin/reset-stats');
    assert.equal(r.status, 200);
    const z = await stats(port);
    assert.equal(z.sends_total, 0);
    assert.equal(z.http_requests_total, 0);
    assert.equal(z.traced_requests_total, 0);
    assert.equal(z.accounts, 2);
    ok('admin reset-stats zeroes the counters');
}

async function testHttpExtras(port)
{
    const t0 = Date.now();
    const d = await request(port, 'GET', '/delay?ms=150');
    assert.equal(d.status, 200);
    assert.equal(d.text, 'ok');
    assert.ok(Date.now() - t0 >= 140);
    for (const code of [204, 404, 418, 503]) {
        const r = await request(port, 'GET', `/status/${code}`);
        assert.equal(r.status, code);
    }
    ok('/delay waits; /status/NNN answers NNN');

    const r307 = await request(port, 'POST', '/redirect/307?to=/echo');
    assert.equal(r307.status, 307);
    assert.equal(r307.headers.location, '/echo');
    const chain = await request(port, 'GET', '/redirect/302?hops=3&to=/echo');
    assert.equal(chain.status, 302);
    assert.match(chain.headers.location, /^\/redirect\/302\?hops=2&to=/);
    const loop = await request(port, 'GET', '/redirect/loop');
    assert.equal(loop.status, 302);
    assert.equal(loop.headers.location, '/redirect/loop');
    const evil = await request(port, 'GET',
                               '/redirect/301?to=http://example.com/');
    assert.equal(evil.status, 400);
    ok('redirects: 307, chains, loop; non-local targets refused');

    const e = await request(port, 'PUT', '/echo?x=1',
                            { body: 'payload', headers: { 'X-J4': 'yes',
                              'Content-Type': 'text/plain' } });
    assert.equal(e.json.method, 'PUT');
    assert.equal(e.json.body, 'payload');
    assert.equal(e.json.headers['x-j4'], 'yes');
    ok('/echo reflects method, body and headers');

    const c0 = (await request(port, 'GET', '/connections')).json;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const ids = [];
    for (let i = 0; i < 3; i++)
        ids.push((await request(port, 'GET', '/connections', { agent }))
            .json.connection_id);
    agent.destroy();
    assert.equal(new Set(ids).size, 1);
    const c1 = (await request(port, 'GET', '/connections')).json;
    assert.equal(c1.total - c0.total, 2);   /* one keep-alive + this one */
    assert.ok(c1.open >= 1);
    ok('/connections shows keep-alive reuse');
}

async function testIdleAndNoAdmin()
{
    const srv = await startServer(['--idle-timeout', '1s']);
    const client = grpcClient(srv.grpc);
    try {
        const off = await request(srv.http, 'GET', '/admin/stats');
        assert.equal(off.status, 404);
        ok('/admin is off without --admin');

        await request(srv.http, 'POST', '/accounts',
                      { body: { username: 'bob' } });
        const a = await request(srv.http, 'POST', '/accounts',
                                { body: { username: 'carol' } });
        const tok = await request(srv.http, 'POST', '/tokens',
                                  { body: { username: 'carol',
                                            password: a.json.password } });
        const token = tok.json.token;
        const chatId = a.json.chat_id;
        const s = openSession(client, token, chatId);
        let ended = null;
        s.ended.then((c) => (ended = c));
        /* Pinging keeps the session alive past the idle timeout... */
        for (let i = 0; i < 10; i++) {
            await unary(client, 'Ping', { token });
            await sleep(200);
        }
        assert.equal(ended, null);
        /* ...and stopping the pings gets it dropped. */
        assert.equal(await withTimeout(s.ended, 3000, 'idle drop'),
                     grpc.status.UNAVAILABLE);
        ok('idle sessions end with UNAVAILABLE; pings keep them open');
    } finally {
        client.close();
    }
    assert.equal(await stopServer(srv.child), 0);
    ok('server exits 0 on SIGTERM');
}

async function main()
{
    const srv = await startServer(['--admin']);
    const users = await testRest(srv.http);
    await testGraphql(srv.http, users);
    await testGrpc(srv.grpc, srv.http, users);
    await testStats(srv.http);
    await testHttpExtras(srv.http);
    assert.equal(await stopServer(srv.child), 0);
    await testIdleAndNoAdmin();
    process.stdout.write(`selftest: all ${checks} checks passed\n`);
}

function killAll()
{
    for (const child of children)
        child.kill('SIGKILL');
}

process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
        killAll();
        process.exit(1);
    });
}
setTimeout(() => {
    process.stderr.write('selftest: overall timeout\n');
    killAll();
    process.exit(1);
}, OVERALL_MS).unref();

main().then(() => process.exit(0), (err) => {
    process.stderr.write(`selftest: FAILED after ${checks} checks: ` +
                         `${err.stack || err}\n`);
    killAll();
    process.exit(1);
});
