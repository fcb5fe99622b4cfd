// The BullMQ side of the outbound benchmark: the same job as chatgate's — accept a new-conversation
// request over HTTP (202 once the job is in Redis), and have workers send the template to the
// Cloud API (the fake) and keep the provider's message id — with BullMQ on the same Redis.
// Usage: node server.mjs --listen 127.0.0.1:PORT --redis 127.0.0.1:PORT --api http://127.0.0.1:PORT
//        --token TOKEN [--concurrency 20]
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { Queue, Worker } from 'bullmq';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) =>
  a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc, []));
const [host, port] = args.listen.split(':');
const [redisHost, redisPort] = args.redis.split(':');
const connection = { host: redisHost, port: Number(redisPort), maxRetriesPerRequest: null };
const api = args.api;
const token = args.token;
const concurrency = Number(args.concurrency || 20);

const queue = new Queue('templates', { connection });
const worker = new Worker('templates', async (job) => {
  const { phone_number_id: number, body } = job.data;
  const res = await fetch(`${api}/v21.0/${number}/messages`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const out = await res.json();
  if (!res.ok) throw new Error(`provider answered ${res.status}`);
  return { status: 'sent', provider_message_id: out.messages[0].id };
}, { connection, concurrency });
worker.on('error', (err) => console.error('worker:', err.message));

const e164 = /^\+[1-9][0-9]{7,14}$/;

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/send') {
    res.writeHead(404).end();
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    let r;
    try {
      r = JSON.parse(Buffer.concat(chunks).toString());
    } catch {
      res.writeHead(400, { 'Content-Type': 'application/json' }).end('{"error":"invalid_json"}');
      return;
    }
    if (r.channel !== 'whatsapp' || !e164.test(r.to) || !r.template?.name) {
      res.writeHead(422, { 'Content-Type': 'application/json' }).end('{"error":"validation_failed"}');
      return;
    }
    const body = {
      messaging_product: 'whatsapp', recipient_type: 'individual', to: r.to.slice(1), type: 'template',
      template: {
        name: r.template.name, language: { code: r.template.language },
        components: [{ type: 'body', parameters: r.template.body_params.map((text) => ({ type: 'text', text })) }],
      },
    };
    const id = randomUUID();
    try {
      await queue.add('template', { phone_number_id: r.phone_number_id, body }, {
        jobId: id, attempts: 10, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: { age: 86400 },
      });
    } catch (err) {
      res.writeHead(503, { 'Content-Type': 'application/json' }).end('{"error":"unavailable"}');
      return;
    }
    res.writeHead(202, { 'Content-Type': 'application/json' })
      .end(JSON.stringify({ conversation_id: id, message_id: id, status: 'queued' }));
  });
});
server.listen(Number(port), host, () => console.log(`bullmq bench listening on ${host}:${port}`));

const stop = async () => { server.close(); await worker.close(); await queue.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
