package validate

// Strimzi's kafka.strimzi.io/v1beta2 KafkaTopic and KafkaUser, as far as these manifests use
// them. Strimzi publishes no Go module and its CRD schemas are not in a registry this build can
// reach, so these types follow Strimzi's CRD reference ("Custom resource API reference":
// KafkaTopicSpec, KafkaUserSpec, KafkaUserScramSha512ClientAuthentication,
// KafkaUserTlsClientAuthentication, KafkaUserAuthorizationSimple, AclRule,
// AclRuleTopicResource/GroupResource/ClusterResource/TransactionalIdResource). Decoded strictly,
// so an unknown or misspelt field fails; enum values are checked by checkStrimzi.

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

type kafkaTopic struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		TopicName  string            `json:"topicName,omitempty"`
		Partitions *int32            `json:"partitions,omitempty"`
		Replicas   *int32            `json:"replicas,omitempty"`
		Config     map[string]string `json:"config,omitempty"`
	} `json:"spec"`
}

type aclRule struct {
	Resource struct {
		Type        string `json:"type"`
		Name        string `json:"name,omitempty"`
		PatternType string `json:"patternType,omitempty"`
	} `json:"resource"`
	Type       string   `json:"type,omitempty"`
	Operations []string `json:"operations,omitempty"`
	Host       string   `json:"host,omitempty"`
}

type kafkaUser struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Authentication *struct {
			Type string `json:"type"`
		} `json:"authentication,omitempty"`
		Authorization *struct {
			Type string    `json:"type"`
			Acls []aclRule `json:"acls"`
		} `json:"authorization,omitempty"`
	} `json:"spec"`
}

var (
	userAuthTypes = map[string]bool{"scram-sha-512": true, "tls": true, "tls-external": true}
	aclResources  = map[string]bool{"topic": true, "group": true, "cluster": true, "transactionalId": true}
	aclPatterns   = map[string]bool{"literal": true, "prefix": true}
	aclOperations = map[string]bool{"Read": true, "Write": true, "Create": true, "Delete": true, "Alter": true, "Describe": true, "ClusterAction": true, "AlterConfigs": true, "DescribeConfigs": true, "IdempotentWrite": true, "All": true}
)
