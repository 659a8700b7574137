// A NestJS service (ClientKafka from @nestjs/microservices, kafkajs under it)
// talking to the customer-service daemon as the platform's services do:
// the seed's admin action by emit(), a read by send() (request-response),
// the routed events read back by a plain kafkajs consumer.
// Env: CS_KAFKA_BROKERS, CS_TOPIC_PREFIX, ADMIN_SECRET. Exit 0 when all holds.
'use strict';
require('reflect-metadata');
const crypto = require('crypto');
const { ClientKafka } = require('@nestjs/microservices');
const { Kafka, logLevel } = require('kafkajs');
const { lastValueFrom, timeout } = require('rxjs');

const brokers = process.env.CS_KAFKA_BROKERS.split(',');
const prefix = process.env.CS_TOPIC_PREFIX || '';
const adminSecret = process.env.ADMIN_SECRET;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// A Kafka message as NestJS sends it, signed: the value is serialized by
// NestJS with JSON.stringify, the signature covers those bytes.
function signed(payload) {
  const bytes = JSON.stringify(payload);
  const signature = crypto.createHmac('sha256', adminSecret).update(bytes).digest('hex');
  return { value: payload, headers: { 'x-service': payload.sourceService, 'x-signature': signature } };
}

async function readUntil(topic, done, timeoutMs = 60000) {
  const kafka = new Kafka({ clientId: 'e2e-reader', brokers, logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: 'e2e-reader-' + crypto.randomUUID(), readUncommitted: false });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen = [];
  let resolve;
  const finished = new Promise((r) => (resolve = r));
  await consumer.run({
    eachMessage: async ({ message }) => {
      seen.push({ key: message.key && message.key.toString(), value: JSON.parse(message.value.toString()) });
      if (done(seen)) resolve();
    },
  });
  const timer = setTimeout(resolve, timeoutMs);
  await finished;
  clearTimeout(timer);
  await consumer.disconnect();
  return seen;
}

async function main() {
  const client = new ClientKafka({
    client: { clientId: 'admin-service', brokers, logLevel: logLevel.NOTHING },
    consumer: { groupId: 'admin-service-e2e-' + crypto.randomUUID() },
  });
  client.subscribeToResponseOf(prefix + 'customer.data.request');
  await client.connect();

  const createId = crypto.randomUUID();
  await lastValueFrom(client.emit(prefix + 'customer.update.request', signed({
    requestId: createId, sourceService: 'admin-service', action: 'create',
    customerType: 'sme', name: 'Nest SME', email: 'nest@sme.example',
  })));
  let results = await readUntil(prefix + 'customer.request.result', (s) => s.some((r) => r.value.requestId === createId));
  const created = results.find((r) => r.value.requestId === createId);
  check(created, 'no answer to the creation');
  check(created.value.status === 'accepted', 'creation: ' + JSON.stringify(created.value));
  const customerId = created.value.customerId;

  // The seed's example, as written there.
  const validateId = crypto.randomUUID();
  const adminId = crypto.randomUUID();
  await lastValueFrom(client.emit(prefix + 'admin.customer.action', signed({
    requestId: validateId, sourceService: 'admin-service', customerId, adminId,
    action: 'validate', details: { notes: 'KYC documents checked' },
  })));
  results = await readUntil(prefix + 'customer.request.result', (s) => s.some((r) => r.value.requestId === validateId));
  const validated = results.find((r) => r.value.requestId === validateId);
  check(validated && validated.value.status === 'accepted', 'validate: ' + JSON.stringify(validated && validated.value));
  check(validated.value.events[0].type === 'customer.validated', 'validate appended ' + JSON.stringify(validated.value));

  const events = await readUntil(prefix + 'customer.validated',
    (s) => s.filter((r) => r.value.customerId === customerId).length >= 4, 30000);
  const mine = events.filter((r) => r.value.customerId === customerId);
  const targets = mine.map((r) => r.value.targetService).sort();
  check(JSON.stringify(targets) === JSON.stringify(
    ['accounting-service', 'admin-service', 'app-mobile-service', 'portfolio-sme-service']),
    'customer.validated went to ' + JSON.stringify(targets));
  for (const r of mine) {
    check(r.key === customerId, 'keyed by customerId');
    check(r.value.adminId === adminId && typeof r.value.timestamp === 'string', 'seed format: ' + JSON.stringify(r.value));
    check(!('name' in r.value) && !('email' in r.value), 'personal data published: ' + JSON.stringify(r.value));
  }

  // Request-response: NestJS's send() gets the daemon's answer on the reply topic.
  const reply = await lastValueFrom(client.send(prefix + 'customer.data.request', signed({
    requestId: crypto.randomUUID(), sourceService: 'admin-service', customerId, include: ['customer', 'tokens'],
  })).pipe(timeout(60000)));
  check(reply && reply.status === 'accepted', 'read reply: ' + JSON.stringify(reply));
  check(reply.customer.status === 'validated' && reply.customer.customerId === customerId,
    'read reply customer: ' + JSON.stringify(reply.customer));

  await client.close();
  console.log('nestjs e2e: ok (customer ' + customerId + ' validated, routed to ' + targets.join(', ') + ')');
}

main().then(() => process.exit(0), (e) => {
  console.error('nestjs e2e: FAILED: ' + (e && e.stack || e));
  process.exit(1);
});
