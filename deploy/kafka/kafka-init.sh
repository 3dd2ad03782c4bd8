#!/usr/bin/env bash
# One-shot set-up of the compose broker (docker-compose.yml, service kafka-init): topics,
# a SCRAM-SHA-512 user per service and its ACLs. It shares the broker's network namespace
# and speaks to the loopback-only PLAINTEXT listener, whose principal (ANONYMOUS) is the
# broker's only super user; every other client logs in on kafka:9092 with SASL.
# Idempotent: a second `docker compose up` finds everything in place.
set -euo pipefail

BIN=/opt/kafka/bin
BOOTSTRAP=localhost:29092
PARTITIONS=4

topics=(helpstream.commands helpstream.tickets helpstream.sla helpstream.feedback
        helpstream.notifications helpstream.mail)

for topic in "${topics[@]}"; do
  config=()
  # commands are judged stale by the broker's arrival time, not the producer's clock
  [[ $topic == helpstream.commands ]] && config=(--config message.timestamp.type=LogAppendTime)
  for name in "$topic" "$topic.dlq"; do
    "$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
      --topic "$name" --partitions "$PARTITIONS" --replication-factor 1 \
      ${config[@]+"${config[@]}"}
  done
done

user() {  # user password
  "$BIN/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --alter --entity-type users \
    --entity-name "$1" --add-config "SCRAM-SHA-512=[iterations=8192,password=$2]"
}

allow() {  # user operation topic...
  local principal=User:$1 operation=$2
  shift 2
  for topic in "$@"; do
    "$BIN/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" --add --allow-principal "$principal" \
      --operation "$operation" --topic "$topic"
  done
}

groups() {  # user service: the consumer groups helpstream-<service>-*
  "$BIN/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" --add --allow-principal "User:$1" \
    --operation Read --group "helpstream-$2-" --resource-pattern-type prefixed
}

user helpstream-intake "$KAFKA_PASSWORD_INTAKE"
allow helpstream-intake Write helpstream.tickets \
  helpstream.commands.dlq helpstream.sla.dlq helpstream.feedback.dlq helpstream.notifications.dlq \
  helpstream.mail.dlq
allow helpstream-intake Read helpstream.commands helpstream.sla helpstream.feedback \
  helpstream.notifications helpstream.mail
groups helpstream-intake intake

user helpstream-sla-monitor "$KAFKA_PASSWORD_SLA_MONITOR"
allow helpstream-sla-monitor Write helpstream.sla helpstream.tickets.dlq
allow helpstream-sla-monitor Read helpstream.tickets
groups helpstream-sla-monitor sla_monitor

user helpstream-feedback "$KAFKA_PASSWORD_FEEDBACK"
allow helpstream-feedback Write helpstream.feedback helpstream.tickets.dlq
allow helpstream-feedback Read helpstream.tickets
groups helpstream-feedback feedback

user helpstream-notifier "$KAFKA_PASSWORD_NOTIFIER"
allow helpstream-notifier Write helpstream.notifications \
  helpstream.tickets.dlq helpstream.sla.dlq helpstream.feedback.dlq helpstream.mail.dlq
allow helpstream-notifier Read helpstream.tickets helpstream.sla helpstream.feedback \
  helpstream.mail
groups helpstream-notifier notifier

# the mail gateway speaks signed commands, bounces and erasure confirmations on
# helpstream.mail; it reads helpstream.tickets for erasure requests only
user helpstream-mail-gateway "$KAFKA_PASSWORD_MAIL_GATEWAY"
allow helpstream-mail-gateway Write helpstream.commands helpstream.mail helpstream.tickets.dlq
allow helpstream-mail-gateway Read helpstream.tickets
groups helpstream-mail-gateway mail_gateway

echo "kafka-init: topics, users and ACLs in place"
